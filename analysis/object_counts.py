"""Generalisation to object counts never seen in training: train on 3–5 objects, test on every count from 2 to 10.

For each seed, one model is trained on a 3–5-object springs file (state encoder: slot k reads object k, padded slots
are masked, so one model handles any count up to its slots; it is trained with ``--num-slots`` = the largest test
count). Every test count gets its own held-out file; each (seed, count) cell runs `causal-wm evaluate` (Hits@1 and MRR
at 1/5/10 steps) and `causal-wm probe` (edge AUROC, SHD at the training threshold). Cells are saved as they finish
under OUT/cells/ and skipped on a rerun, so an interrupted sweep loses nothing. Writes OUT/summary.json and
OUT/summary.csv with the mean and 95% CI over seeds per count.

The CNN extractor has a fixed number of object maps K tied to colours and cannot change its slot count; Slot
Attention can (``num_slots`` at call time) but is at chance on these scenes (README), so this script runs the state
encoder by default and accepts ``--encoder slots`` for when that changes.

    python analysis/object_counts.py --seeds 0 1 2 --out results/object_counts_state
    python analysis/object_counts.py --smoke        # seconds, in a temporary directory
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from causal_wm import metrics  # noqa: E402
from causal_wm.config import PROBE_METHODS, write_json  # noqa: E402

# auroc is the best method's per cell (chosen on the test cell, so optimistic); auroc_{method} is one fixed method's.
METHOD_KEYS = tuple(f"auroc_{m}" for m in PROBE_METHODS)  # cells probed before a method existed leave it out
SHD_KEYS = tuple(k.replace("auroc", "shd", 1) for k in METHOD_KEYS)  # at each method's own training threshold
ROW_KEYS = ("hits_at_1_1", "hits_at_1_5", "hits_at_1_10", "mrr_1", "mrr_10", "auroc", "shd", *METHOD_KEYS, *SHD_KEYS)


def parse_counts(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    counts = list(range(int(lo), int(hi or lo) + 1))
    if not counts or counts[0] < 2:
        raise argparse.ArgumentTypeError(f"counts must be a range like 2-10 with at least 2 objects, got {text!r}")
    return counts


def dataset(path: Path, counts: str, episodes: int, seed: int, steps: int, images: bool) -> Path:
    """Generate a springs file once (reused when it exists)."""
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate

    if not path.exists():
        cfg = GenerateConfig(
            scene="springs", episodes=episodes, steps=steps, num_objects=counts, seed=seed, images=images
        )
        generate(cfg, path, progress=False)
    return path


def cell(run: Path, data: Path, out: Path, time_stride: int) -> dict:
    """Evaluate and probe one (seed, count) cell, saved to ``out`` (skipped when it exists)."""
    if out.exists():
        return json.loads(out.read_text())
    from causal_wm.evaluate import evaluate
    from causal_wm.probe import ProbeConfig, probe

    ev = evaluate(run, str(data))
    pr, _ = probe(run, str(data), ProbeConfig(time_stride=time_stride))
    row = {f"hits_at_1_{h}": ev["hits_at_1"][h] for h in ("1", "5", "10")}
    row.update({f"mrr_{h}": ev["mrr"][h] for h in ("1", "10")})
    row.update(auroc=pr["auroc"], shd=pr["shd"], best_method=pr["best_method"])
    row.update({f"auroc_{m}": v["adjacency"]["auroc"] for m, v in pr["methods"].items()})
    row.update({f"shd_{m}": v["adjacency"].get("shd") for m, v in pr["methods"].items()})
    write_json(out, row)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="output directory")
    p.add_argument("--encoder", default="state", choices=["state", "slots"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train-counts", default="3-5")
    p.add_argument("--test-counts", type=parse_counts, default=parse_counts("2-10"))
    p.add_argument("--episodes", type=int, default=1000, help="training episodes")
    p.add_argument("--test-episodes", type=int, default=200, help="held-out episodes per count")
    p.add_argument("--steps", type=int, default=2500, help="training steps")
    p.add_argument("--frames", type=int, default=50, help="frames per episode")
    p.add_argument("--time-stride", type=int, default=10, help="probe every n-th step")
    p.add_argument("--train-args", default="", help="extra arguments for `causal-wm train`, e.g. '--decoder'")
    p.add_argument("--smoke", action="store_true", help="a tiny sweep in a temporary directory")
    args = p.parse_args(argv)
    if args.smoke:
        args.out = args.out or Path(tempfile.mkdtemp(prefix="object_counts_smoke_"))
        args.seeds, args.test_counts, args.episodes, args.test_episodes = [0, 1], [2, 6], 8, 4
        args.steps, args.frames, args.time_stride = 3, 14, 4
        args.train_args = "--batch-size 4 --rollout-steps 2 --hidden 16 --slot-dim 4"
    if args.out is None:
        p.error("--out is required (or --smoke)")
    from causal_wm.cli import main as cli

    images = args.encoder != "state"
    data_dir = args.out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    train_h5 = dataset(
        data_dir / f"train_{args.train_counts}.h5", args.train_counts, args.episodes, 0, args.frames, images
    )
    tests = {
        c: dataset(data_dir / f"test_{c}.h5", str(c), args.test_episodes, 100 + c, args.frames, images)
        for c in args.test_counts
    }
    cells: dict[int, dict[int, dict]] = {}
    for seed in args.seeds:
        run = args.out / f"run_{args.encoder}_{seed}"
        if not (run / "checkpoints" / "last.pt").exists():
            train = ["train", "--data", str(train_h5), "--encoder", args.encoder, "--out", str(run), "--quiet"]
            train += ["--seed", str(seed), "--steps", str(args.steps), "--num-slots", str(max(args.test_counts))]
            if cli(train + args.train_args.split()) != 0:
                return 1
        for c, data in tests.items():
            print(f"seed {seed}, {c} objects", flush=True)
            cells.setdefault(c, {})[seed] = cell(run, data, args.out / "cells" / f"{seed}_{c}.json", args.time_stride)
    summary = {"encoder": args.encoder, "train_counts": args.train_counts, "seeds": args.seeds, "counts": {}}
    rows = []
    for c in args.test_counts:
        entry = {}
        for key in ROW_KEYS:
            values = [v[key] for v in cells[c].values() if v.get(key) is not None]
            if values:
                mean, lo, hi = metrics.mean_ci(values)
                entry[key] = {"mean": mean, "ci": [lo, hi]}
                rows.append({"count": c, "metric": key, "mean": mean, "ci_low": lo, "ci_high": hi, "n": len(values)})
        summary["counts"][str(c)] = entry
    write_json(args.out / "summary.json", summary)
    tmp = args.out / ".summary.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["count", "metric", "mean", "ci_low", "ci_high", "n"])
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(args.out / "summary.csv")
    print(f"{'count':>5} {'Hits@1 1':>9} {'Hits@1 10':>10} {'AUROC best':>11} {'AUROC gates':>12} {'SHD gates':>10}")
    for c in args.test_counts:
        e = summary["counts"][str(c)]
        get = lambda k, e=e: e[k]["mean"] if k in e else float("nan")  # noqa: E731
        print(
            f"{c:>5} {get('hits_at_1_1'):>9.3f} {get('hits_at_1_10'):>10.3f} {get('auroc'):>11.3f} "
            f"{get('auroc_gates'):>12.3f} {get('shd_gates'):>10.2f}"
        )
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
