"""Choose the contact channel's range and lookahead from a dataset: what each setting misses and what it lets in.

`ContactMessages` with ``--contact-range R`` passes messages only between pairs within R arena units, measured on
their present distance or, with ``--contact-lookahead T``, on their closest approach within the next T seconds at
their present relative velocity. A good setting keeps in range every pair that is about to touch and few pairs that
are not touching: the channel learns from the pairs in range, and it must not learn the springs' pull there. From
the file's true states and ``contacts`` this script prints, for every (T, R):

- missed onsets: of the pairs that begin touching during a step (no contact at t, contact at t + 1), the fraction
  out of range at t;
- in range, not touching: the fraction of ordered pairs of real objects and steps out of contact at both t and t + 1
  that are in range at t.

    python analysis/contact_range.py --data data/springs5_train.h5 --episodes 300
    python analysis/contact_range.py --smoke      # a tiny generated file (seconds)
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
import torch

from causal_wm.transition import closest_approach


def table(path: str, episodes: int, ranges: list[float], lookaheads: list[float]) -> list[dict]:
    with h5py.File(path, "r") as f:
        missing = {"states", "contacts", "num_objects"} - set(f)
        if missing:
            sys.exit(f"contact_range.py: {path} lacks {', '.join(sorted(missing))} (made by causal-wm generate?)")
        states = f["states"][:episodes].astype(np.float64)  # (E, T, N, F)
        contacts = f["contacts"][:episodes].astype(bool)  # (E, T, N, N)
        counts = f["num_objects"][:episodes]
    n = states.shape[2]
    real = np.arange(n)[None] < counts[:, None]  # (E, N)
    pair = (real[:, :, None] & real[:, None, :] & ~np.eye(n, dtype=bool))[:, None]  # (E, 1, N, N)
    onset = contacts[:, 1:] & ~contacts[:, :-1] & pair  # begins touching during step t -> t + 1
    apart = ~contacts[:, 1:] & ~contacts[:, :-1] & pair
    s = torch.from_numpy(states[:, :-1])
    d = s[:, :, :, None, :2] - s[:, :, None, :, :2]  # p_i - p_j at t, (E, T-1, N, N, 2)
    u = s[:, :, :, None, 2:4] - s[:, :, None, :, 2:4]
    rows = []
    for lookahead in lookaheads:
        dist = closest_approach(d, u, lookahead).squeeze(-1).numpy()  # the model's own range distance
        for r in ranges:
            near = dist < r
            rows.append(
                dict(
                    lookahead=lookahead,
                    range=r,
                    onsets=int(onset.sum()),
                    missed_onsets=float((onset & ~near).sum() / max(onset.sum(), 1)),
                    in_range_not_touching=float((apart & near).sum() / max(apart.sum(), 1)),
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="an HDF5 file with states and contacts (causal-wm generate)")
    parser.add_argument("--episodes", type=int, default=300, help="first episodes to read (default 300)")
    parser.add_argument("--ranges", default="12,14,16,18,21,27", help="comma-separated R (arena units)")
    parser.add_argument("--lookaheads", default="0,0.1,0.2", help="comma-separated T (seconds; 0.1 = one frame)")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--smoke", action="store_true", help="a tiny generated springs file (seconds)")
    args = parser.parse_args()
    try:
        ranges = [float(x) for x in args.ranges.split(",")]
        lookaheads = [float(x) for x in args.lookaheads.split(",")]
    except ValueError:
        parser.error("--ranges and --lookaheads take comma-separated numbers")
    if min(ranges) <= 0 or min(lookaheads) < 0 or args.episodes < 1:
        parser.error("ranges must be > 0, lookaheads >= 0 and --episodes >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data
        if args.smoke:
            path = str(Path(tmp) / "springs.h5")
            cmd = ["causal-wm", "generate", "--scene", "springs", "--num-objects", "3-5", "--episodes", "6"]
            subprocess.run(cmd + ["--steps", "20", "--no-images", "--out", path, "--quiet"], check=True)
        elif path is None:
            parser.error("--data is required (or --smoke)")
        elif not Path(path).exists():
            parser.error(f"no such file: {path}")
        rows = table(path, args.episodes, ranges, lookaheads)
    print(f"{path}: {rows[0]['onsets']} contact onsets")
    print(f"{'lookahead T':>11} {'range R':>8} {'missed onsets':>14} {'in range, not touching':>23}")
    for r in rows:
        print(f"{r['lookahead']:>11g} {r['range']:>8g} {r['missed_onsets']:>14.4f} {r['in_range_not_touching']:>23.4f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"data": str(path), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
