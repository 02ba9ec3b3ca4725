"""How much of the graph can be read from W observations? The Hooke regression baseline on windows of each length.

A model trained with ``--graph-context W`` infers its graph from the W observations before a rollout, and the probe's
default (``--graph-from window``) reads it the same way. This script bounds what such a window holds: the
``regression_linear`` baseline (a ridge regression of each particle's acceleration on every other particle's
displacement, no despiking; see ``causal_wm.discovery``) is fitted on the W true states ending at each probed step,
its scores are averaged over the probed steps of an episode as the probe averages its methods', and the pooled edge
AUROC against ``adjacency`` is reported per window length (``all``: each episode's whole trajectory, once).

    python analysis/regression_window.py --data data/nri5_test.h5 --windows 10 25 all
    python analysis/regression_window.py --smoke     # a tiny NRI-style file in a temporary directory (seconds)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

from causal_wm.discovery import discover
from causal_wm.metrics import graph_scores
from causal_wm.probe import ProbeConfig

ROOT = Path(__file__).resolve().parents[1]


def window_scores(states: np.ndarray, num_objects: np.ndarray, window: int | None, stride: int) -> np.ndarray:
    """(E, N, N) ``regression_linear`` scores per episode, averaged over windows of ``window`` steps ending at every
    ``stride``-th step from ``window - 1`` (the probe's steps); ``window=None``: the whole episode."""
    t = states.shape[1]
    ends = [t - 1] if window is None else list(range(window - 1, t - 1, stride))
    total = 0.0
    for end in ends:
        start = 0 if window is None else end - window + 1
        total = total + discover("regression_linear", states[:, start : end + 1], num_objects).astype(np.float64)
    return total / len(ends)


def parse_windows(values: list[str], steps: int) -> list[int | None]:
    windows = []
    for v in values:
        if v == "all":
            windows.append(None)
            continue
        try:
            w = int(v)
        except ValueError:
            sys.exit(f"regression_window.py: --windows takes integers or 'all', got {v!r}")
        if not 3 <= w < steps:
            sys.exit(f"regression_window.py: a window must hold 3 to {steps - 1} observations, got {w}")
        windows.append(w)
    return windows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="HDF5 file with states and adjacency")
    ap.add_argument("--windows", nargs="+", default=["10", "25", "all"], help="window lengths, or 'all'")
    ap.add_argument(
        "--stride", type=int, default=ProbeConfig.time_stride, help="probe every n-th step (default: the probe's)"
    )
    ap.add_argument("--episodes", type=int, default=None, help="only the first N episodes")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    ap.add_argument("--smoke", action="store_true", help="a tiny NRI-style file in a temporary directory")
    args = ap.parse_args(argv)
    if args.smoke:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "nri.h5"
            subprocess.run(
                [sys.executable, str(ROOT / "analysis/nri_springs.py"), "--smoke", "--out", str(data)], check=True
            )
            return main(["--data", str(data), "--windows", "5", "all", "--json", str(Path(tmp) / "r.json")])
    if args.data is None:
        ap.error("--data is required (or --smoke)")
    if args.stride < 1:
        sys.exit("regression_window.py: --stride must be positive")
    if args.episodes is not None and args.episodes < 1:
        sys.exit("regression_window.py: --episodes must be positive")
    if not args.data.is_file():
        sys.exit(f"regression_window.py: {args.data} does not exist")
    with h5py.File(args.data, "r") as f:
        if "adjacency" not in f:
            sys.exit(f"regression_window.py: {args.data} has no 'adjacency' to score against")
        sel = slice(0, args.episodes)
        states, num_objects, adjacency = f["states"][sel], f["num_objects"][sel], f["adjacency"][sel]
    windows = parse_windows(args.windows, states.shape[1])
    rows = []
    for w in windows:
        s = window_scores(states, num_objects, w, args.stride)
        g = graph_scores(s, adjacency, num_objects)
        rows.append({"window": "all" if w is None else w, "auroc": g["auroc"], "ap": g["ap"]})
        print(f"window {rows[-1]['window']:>4}: AUROC {g['auroc']:.4f}  AP {g['ap']:.4f}  ({len(states)} episodes)")
    if args.json is not None:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps({"data": str(args.data), "stride": args.stride, "rows": rows}, indent=2))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
