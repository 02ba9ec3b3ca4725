"""Which slot holds which object type? The colour <-> slot tie of a keypoint run (`--encoder cnn --keypoints`).

A keypoint decoder gives slot k one colour, so reconstruction should tie map k to the objects of colour k, and the
slot index becomes the object's visible type. This script measures that tie on held-out frames: for every object
type, the mean responsibility of each slot's map on that object's pixels (the simulator's masks), over sampled
frames. A clean tie is one large entry per row. It also prints the decoder's colours next to each type's colour on
the frames (the mean over its pixels, whatever the scene's palette): learned colours can drift away from them until
a mixture of two maps reconstructs one object's colour, which splits the object between two slots (README, "Edge
recovery from pixels with keypoint slots").

    python analysis/keypoint_colours.py --run runs/springs5_kp__cnn__0 --data data/springs5_test.h5
    python analysis/keypoint_colours.py --smoke        # a tiny run in a temporary directory (seconds)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from causal_wm.data import validate  # noqa: E402
from causal_wm.train import EpisodeArrays, load_run  # noqa: E402


@torch.no_grad()
def type_slot_responsibility(run, data_path: str, episodes: int, times: list[int]) -> dict:
    """(types, K) mean slot responsibility on each type's pixels, with the object counts behind each row."""
    from causal_wm.probe import _encode_times

    model = load_run(run)
    if not (model.config.encoder == "cnn" and model.config.keypoints):
        raise SystemExit(f"{run} is not a keypoint run (--encoder cnn --keypoints)")
    features = validate(data_path).state_features
    data = EpisodeArrays(data_path, images=True, episodes=slice(0, episodes))
    if data.masks is None:
        raise SystemExit(f"{data_path} has no object masks")
    if "type" not in features:
        raise SystemExit(f"{data_path} has no 'type' state feature")
    types = data.states[:, 0, :, features.index("type")].round().astype(np.int64)  # (E, N)
    times_arr = np.array([t for t in times if model.first_observation <= t < data.steps])
    if len(times_arr) == 0:
        raise SystemExit(f"no frame of {times} lies inside episodes of {data.steps} frames")
    num_types, k = int(types.max()) + 1, model.config.num_slots
    total, count = np.zeros((num_types, k)), np.zeros(num_types, dtype=np.int64)
    rgb, pixels_seen = np.zeros((num_types, 3)), np.zeros(num_types)  # each type's colour as drawn on the frames
    for a in range(0, data.num_episodes, 50):
        e = np.arange(a, min(a + 50, data.num_episodes))
        _, masks = _encode_times(model, data, e, times_arr)  # (B, L, K, h, w)
        true = data.masks[e[:, None], times_arr[None]]  # (B, L, H, W), object n is n + 1
        up = F.interpolate(masks.flatten(0, 1), size=true.shape[-2:], mode="bilinear", align_corners=False)
        up = up.unflatten(0, masks.shape[:2]).numpy()
        for bi, ep in enumerate(e):
            for n in range(int(data.num_objects[ep])):
                for li in range(len(times_arr)):
                    pixels = true[bi, li] == n + 1
                    if pixels.any():
                        total[types[ep, n]] += up[bi, li][:, pixels].mean(1)
                        count[types[ep, n]] += 1
                        rgb[types[ep, n]] += data.obs[ep, times_arr[li]][pixels].sum(0)
                        pixels_seen[types[ep, n]] += pixels.sum()
    seen = count > 0
    table = np.where(seen[:, None], total / np.maximum(count, 1)[:, None], np.nan)
    drawn = np.where(seen[:, None], rgb / np.maximum(pixels_seen, 1)[:, None], np.nan).round()
    colours = None if model.decoder is None else (model.decoder.colours * 255).round().int().tolist()
    return {
        "responsibility": table.tolist(),
        "objects": count.tolist(),
        "type_colours": drawn.tolist(),
        "decoder_colours": colours,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="keypoint run directory")
    p.add_argument("--data", help="HDF5 file with frames, masks and a 'type' state feature")
    p.add_argument("--episodes", type=int, default=200, help="first episodes of --data")
    p.add_argument("--times", default="5,20,35", help="comma-separated frames per episode")
    p.add_argument("--out", type=Path, help="also write the table as JSON")
    p.add_argument("--smoke", action="store_true", help="a tiny run in a temporary directory")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    times = [int(t) for t in args.times.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            from causal_wm.cli import main as cli

            data = str(Path(tmp) / "train.h5")
            gen = ["generate", "--scene", "springs", "--num-objects", "3", "--episodes", "4", "--steps", "12"]
            gen += ["--image-size", "32", "--influence-steps", "0", "--workers", "1", "--quiet", "--out", data]
            run = str(Path(tmp) / "kp")
            train = ["train", "--data", data, "--encoder", "cnn", "--keypoints", "--decoder", "--actions", "node"]
            train += ["--num-slots", "4", "--steps", "2", "--batch-size", "4", "--rollout-steps", "2", "--hidden", "16"]
            if cli(gen) != 0 or cli([*train, "--quiet", "--out", run]) != 0:
                return 1
            args.run, args.data, args.episodes, times = run, data, 4, [2, 6]
        elif not (args.run and args.data):
            p.error("--run and --data are required (or --smoke)")
        result = type_slot_responsibility(args.run, args.data, args.episodes, times)
    table = np.array(result["responsibility"])
    print(f"mean responsibility of each slot on each type's pixels ({args.episodes} episodes, frames {times})")
    print("type  objects  " + " ".join(f"slot {s:<2}" for s in range(table.shape[1])))
    for t, row in enumerate(table):
        print(f"{t:>4}  {result['objects'][t]:>7}  " + " ".join(f"{v:>7.2f}" for v in row))
    print(
        "colours on the frames, by type (RGB):",
        [[int(v) for v in c] if np.isfinite(c).all() else None for c in np.array(result["type_colours"])],
    )
    if result["decoder_colours"] is not None:
        print("decoder colours, by slot:", result["decoder_colours"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = args.out.with_suffix(".tmp")
        tmp_out.write_text(json.dumps({"run": str(args.run), "data": str(args.data), **result}, indent=2))
        tmp_out.replace(args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
