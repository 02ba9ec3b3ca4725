"""Score a saved Slot Attention autoencoder with more attention rounds at test time, and say how its masks fail.

`analysis/slot_autoencoder.py --save MODEL.pt` keeps the trained encoder and decoder. This script reloads them and
scores the decoder's FG-ARI on the held-out frames the training script scored (the same episodes and stride) with
each number of attention rounds in ``--iters``, averaged over ``--draws`` samples of the initial slots (Slot
Attention samples them, so one score varies from draw to draw). For the first round count it also sorts the frames
that score below 0.95: ``merge`` when two objects have most of their pixels in the same slot, ``split`` when an
object's most common slot holds less than 75% of its pixels, ``other`` otherwise; and it says how far apart the
merged objects are, against any two objects of the scored frames (are merges of neighbours, or of far-apart objects?).

    python analysis/slot_rounds.py results/slot_autoencoder_billiards_fg10_saved__0.pt --iters 3 5 7 10
    python analysis/slot_rounds.py --smoke       # trains a tiny model for 3 steps and scores it (seconds)
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from slot_autoencoder import build as build_models  # analysis/ is the script's directory
from slot_autoencoder import load_frames, to_input

from causal_wm import metrics
from causal_wm.config import write_json
from causal_wm.decoder import SpatialBroadcastDecoder
from causal_wm.encoders import SlotAttentionEncoder

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path) -> dict:
    """The contents of a ``slot_autoencoder.py --save`` file: ``encoder``, ``decoder`` and ``settings``."""
    try:
        saved = torch.load(path, weights_only=True)
        saved["settings"] = dict(saved["settings"])
        return saved
    except Exception as err:  # a truncated or foreign file
        sys.exit(f"slot_rounds.py: {path} is not a slot_autoencoder.py --save file ({type(err).__name__}: {err})")


def build(saved: dict, image_size: int) -> tuple[SlotAttentionEncoder, SpatialBroadcastDecoder]:
    """The saved encoder and decoder for ``image_size`` frames, in eval mode."""
    encoder, decoder = build_models(saved["settings"], image_size)
    encoder.load_state_dict(saved["encoder"])
    decoder.load_state_dict(saved["decoder"])
    return encoder.eval(), decoder.eval()


@torch.no_grad()
def decoder_masks(encoder, decoder, frames: torch.Tensor, batch: int = 50) -> np.ndarray:
    """(N, K, H, W) decoder masks of ``frames``."""
    return torch.cat(
        [decoder(encoder(to_input(frames[a : a + batch])).slots).masks for a in range(0, len(frames), batch)]
    ).numpy()


def centroids(ids: np.ndarray) -> dict[int, np.ndarray]:
    """Pixel centroids (row, column) of the objects of one (H, W) id map, by object id (0, the background, left out)."""
    return {int(obj): np.argwhere(ids == obj).mean(0) for obj in np.unique(ids[ids > 0])}


def failure_kinds(ids: np.ndarray, masks: np.ndarray, scores: np.ndarray) -> dict:
    """Counts of the frames below 0.95 FG-ARI by kind of failure (see the module docstring), and how far apart the
    merged objects are: the median centroid distance of every pair of objects that share a slot (``merged_pair_px``)
    beside that of every pair of objects in the scored frames (``any_pair_px``), with the share of the merged pairs
    closer than 2.5 ball radii (``merged_pairs_near``; radius from the objects' mean pixel area)."""
    pred = masks.argmax(1)
    centres = [centroids(frame) for frame in ids]
    kinds: collections.Counter = collections.Counter()
    merged, near = [], []
    for f in np.flatnonzero(scores < 0.95):
        owner, split = {}, False
        for obj in np.unique(ids[f][ids[f] > 0]):
            counts = np.bincount(pred[f][ids[f] == obj], minlength=masks.shape[1])
            owner[int(obj)] = int(counts.argmax())
            split |= counts.max() < 0.75 * counts.sum()
        centre = centres[f]
        radius = np.sqrt(np.mean([np.sum(ids[f] == obj) for obj in owner]) / np.pi)
        pairs = [(a, b) for a in owner for b in owner if a < b and owner[a] == owner[b]]
        for a, b in pairs:
            merged.append(float(np.linalg.norm(centre[a] - centre[b])))
            near.append(merged[-1] < 2.5 * radius)
        kinds["merge" if pairs else "split" if split else "other"] += 1
    every = []
    for centre in centres:
        points = list(centre.values())
        every += [float(np.linalg.norm(a - b)) for i, a in enumerate(points) for b in points[i + 1 :]]
    out: dict = {k: kinds.get(k, 0) for k in ("merge", "split", "other")}
    out["merged_pairs"] = len(merged)
    out["merged_pair_px"] = float(np.median(merged)) if merged else None
    out["merged_pairs_near"] = float(np.mean(near)) if near else None
    out["any_pair_px"] = float(np.median(every)) if every else None
    return out


def describe(failures: dict) -> str:
    """One line of `failure_kinds`' counts and merge distances."""
    text = ", ".join(f"{failures[k]} {k}" for k in ("merge", "split", "other"))
    if failures["merged_pairs"]:
        text += (
            f"; {failures['merged_pairs']} merged pairs, median {failures['merged_pair_px']:.1f} px apart "
            f"({failures['merged_pairs_near']:.0%} within 2.5 radii; any two objects: {failures['any_pair_px']:.1f} px)"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", type=Path, help="a slot_autoencoder.py --save file")
    ap.add_argument("--iters", type=int, nargs="+", default=[3, 5, 7, 10], help="attention rounds to score")
    ap.add_argument("--test", type=Path, help="held-out file with masks (default: the one the model was scored on)")
    ap.add_argument("--draws", type=int, default=3, help="samples of the initial slots per score")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the scores to this JSON file")
    ap.add_argument("--smoke", action="store_true", help="train a tiny model for 3 steps and score it (seconds)")
    args = ap.parse_args(argv)
    if args.smoke:
        with tempfile.TemporaryDirectory() as tmp:
            from causal_wm.config import GenerateConfig
            from causal_wm.generate import generate

            data, model = Path(tmp) / "tiny.h5", Path(tmp) / "ae.pt"
            generate(
                GenerateConfig(episodes=4, seed=0, steps=4, num_objects="2-3", image_size=32), data, progress=False
            )
            train = [
                sys.executable,
                str(ROOT / "analysis/slot_autoencoder.py"),
                "--data",
                str(data),
                "--test",
                str(data),
            ]
            train += ["--steps", "3", "--batch", "4", "--slot-dim", "4", "--hidden", "8", "--eval-stride", "2"]
            subprocess.run([*train, "--save", str(model)], check=True, capture_output=True)
            code = main([str(model), "--iters", "1", "2", "--draws", "1", "--out", str(Path(tmp) / "r.json")])
            print("smoke OK" if code == 0 else "smoke FAILED")
            return code
    if args.model is None:
        ap.error("a saved model is required (or --smoke)")
    if not args.model.is_file():
        ap.error(f"{args.model} does not exist")
    if min(args.iters) < 1 or args.draws < 1:
        ap.error("--iters and --draws must be >= 1")
    saved = load(args.model)
    settings = saved["settings"]
    if args.test is not None:
        settings["test"] = str(args.test)
    if not Path(settings["test"]).is_file():
        ap.error(f"the held-out file {settings['test']} of {args.model} is not here; pass --test FILE")
    frames, ids = load_frames(Path(settings["test"]), settings["eval_episodes"], settings["eval_stride"], masks=True)
    encoder, decoder = build(saved, frames.shape[1])
    trained = settings.get("iters", 3)
    print(f"{args.model}: {len(frames)} held-out frames of {settings['test']}, trained with {trained} rounds")
    rows = []
    for iters in args.iters:
        encoder.slot_attention.iters = iters
        torch.manual_seed(args.seed)
        draws = [decoder_masks(encoder, decoder, frames) for _ in range(args.draws)]
        scores = np.array([metrics.fg_ari(ids, m, per_sample=True) for m in draws])  # (draws, N)
        row = {
            "iters": iters,
            "fg_ari": float(np.nanmean(scores)),
            "fg_ari_draws": [float(np.nanmean(s)) for s in scores],
            "frames_at_least_0.95": float(np.mean(scores[np.isfinite(scores)] >= 0.95)),  # frames with objects
        }
        if not rows:
            row["failures"] = failure_kinds(ids, draws[0], scores[0])
        rows.append(row)
        print(
            f"  {iters:>2} rounds: FG-ARI {row['fg_ari']:.3f} (draws "
            f"{', '.join(f'{v:.3f}' for v in row['fg_ari_draws'])}); "
            f"{row['frames_at_least_0.95']:.0%} of frames >= 0.95"
            + (f"; below it: {describe(row['failures'])}" if "failures" in row else "")
        )
    if args.out is not None:
        write_json(args.out, {"model": str(args.model), "settings": settings, "rows": rows})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
