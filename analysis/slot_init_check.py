"""Do a Slot Attention run's slots depend on the image, or on their random initialisation?

Slot Attention starts from random slots; SAVi-style tracking (as in training) then initialises each frame from the
previous frame's slots. If the slots were a function of the image (up to slot order), two tracks of the same episode
started from different random draws would agree. This script encodes every episode along two such tracks (seeds A
and B) and ranks, with the evaluation's energy under the best slot matching, against all episodes:

- ``pred vs track A``: the model's h-step rollout from track A's first slots against track A at step h (what an
  evaluation that tracks its targets with the prediction's own initialisation would report);
- ``pred vs track B``: the same rollout against track B (targets from another initialisation; `causal-wm evaluate`
  likewise encodes its targets from fresh random slots);
- ``A vs B, same step``: track A at step h against track B at step h: 1.0 if the slots are determined by the image.

    python analysis/slot_init_check.py --run runs/springs5_slots1200__0 --data data/springs5_test.h5 --episodes 300
    python analysis/slot_init_check.py --smoke     # a tiny run in a temporary directory (seconds)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from causal_wm import metrics
from causal_wm.train import EpisodeArrays, encode_window, load_run


@torch.no_grad()
def track(model, data: EpisodeArrays, start: int, steps: int, seed: int, batch: int = 100) -> torch.Tensor:
    """(E, steps + 1, K, D) slots of observations start..start+steps, tracked from a random draw under ``seed``."""
    torch.manual_seed(seed)
    out = []
    for a in range(0, data.num_episodes, batch):
        e = np.arange(a, min(a + batch, data.num_episodes))
        w = data.window(e, np.full(len(e), start - model.config.history + 1), steps + 1, model.config.history)
        out.append(encode_window(model, w, steps + 1)[0])
    return torch.cat(out)


def hits(pred: torch.Tensor, target: torch.Tensor) -> float:
    ranks = metrics.ranks(pred, target, distance=metrics.matched_distances(pred, target))
    return metrics.hits_at_k(ranks, 1)


def check(run: str, data_path: str, episodes: int, horizons: list[int], seeds: tuple[int, int]) -> list[dict]:
    model = load_run(run)
    if model.config.encoder != "slots":
        sys.exit(f"slot_init_check.py: {run} uses the {model.config.encoder} encoder, not Slot Attention (slots)")
    data = EpisodeArrays(data_path, images=True, episodes=slice(0, episodes))
    start, steps = model.first_observation, max(horizons)
    if data.steps - 1 - start < steps:
        sys.exit(f"slot_init_check.py: episodes of {data.steps} frames are too short for {steps} steps")
    a, b = track(model, data, start, steps, seeds[0]), track(model, data, start, steps, seeds[1])
    w = data.window(
        np.arange(data.num_episodes), np.zeros(data.num_episodes, np.int64), steps + 1, model.config.history
    )
    positions = w["states"][..., :2] / model.arena_size if model.config.action_node else None
    with torch.no_grad():
        roll = model.imagine(a[:, 0], w["actions"], positions, None, decode=False)["z"]
    return [
        {
            "horizon": h,
            "pred_vs_track_a": hits(roll[:, h], a[:, h]),
            "pred_vs_track_b": hits(roll[:, h], b[:, h]),
            "a_vs_b_same_step": hits(a[:, h], b[:, h]),
        }
        for h in horizons
    ]


def smoke_run(root: Path) -> tuple[str, str]:
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate
    from causal_wm.train import TrainConfig, train

    common = dict(steps=14, num_objects="2-3", image_size=32, influence_steps=0)
    generate(GenerateConfig(episodes=8, seed=0, **common), root / "train.h5", progress=False)
    generate(GenerateConfig(episodes=6, seed=1, **common), root / "test.h5", progress=False)
    cfg = TrainConfig(
        data=str(root / "train.h5"),
        encoder="slots",
        steps=2,
        batch_size=4,
        rollout_steps=2,
        model={"slot_dim": 8, "hidden": 16, "encoder_hidden": 8},
    )
    train(cfg, root / "run", progress=False)
    return str(root / "run"), str(root / "test.h5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a run trained with --encoder slots")
    parser.add_argument("--data", help="held-out HDF5 dataset with images")
    parser.add_argument("--episodes", type=int, default=300, help="first N episodes (default 300)")
    parser.add_argument("--horizons", default="1,5,10", help="comma-separated steps (default 1,5,10)")
    parser.add_argument("--seeds", type=int, nargs=2, default=(0, 1), help="seeds of the two tracks (default 0 1)")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    parser.add_argument("--smoke", action="store_true", help="a tiny run in a temporary directory")
    args = parser.parse_args()
    torch.set_num_threads(2)
    horizons = [int(h) for h in args.horizons.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            run, data = smoke_run(Path(tmp))
            horizons = [1, 2]
        elif not (args.run and args.data):
            parser.error("--run and --data are required (or --smoke)")
        else:
            run, data = args.run, args.data
        rows = check(run, data, args.episodes, horizons, tuple(args.seeds))
    episodes = 6 if args.smoke else args.episodes
    print(f"Hits@1 over {episodes} episodes, tracks seeded {args.seeds[0]} and {args.seeds[1]}")
    print(f"{'h':>3} {'pred vs track A':>16} {'pred vs track B':>16} {'A vs B, same step':>18}")
    for r in rows:
        a, b, same = r["pred_vs_track_a"], r["pred_vs_track_b"], r["a_vs_b_same_step"]
        print(f"{r['horizon']:>3} {a:>16.3f} {b:>16.3f} {same:>18.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"run": run, "data": data, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
