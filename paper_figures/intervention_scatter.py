"""Simulator vs model intervention effects: one point per (episode, non-intervened object) of every intervene report.

Reads the JSON written by `causal-wm intervene` (one or more files).

    python paper_figures/intervention_scatter.py --reports runs/NAME/intervene.json --out paper_figures/out/effects
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paper_figures.common import plt, save  # noqa: E402


def plot(reports: list[str], out: str):
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for path in reports:
        effects = json.loads(Path(path).read_text())["effects"]
        xs, ys = [], []
        for ep in effects["per_episode"]:
            for i, (s, m) in enumerate(zip(ep["simulator_effect"], ep["model_effect"], strict=True)):
                if i not in ep["intervened"] and m is not None and np.isfinite(m):
                    xs.append(s)
                    ys.append(m)
        r = effects.get("pearson")
        label = f"do({effects['do']}): r = {r:.2f}" if r is not None else f"do({effects['do']})"
        ax.scatter(xs, ys, s=14, alpha=0.8, label=label)
    ax.set(xlabel="simulator effect (mean displacement)", ylabel="model effect (mean latent change)")
    ax.set_title("effects of interventions on the other objects")
    ax.legend(frameon=False, loc="upper left")
    return save(fig, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reports", nargs="+", required=True, help="intervene JSON files")
    p.add_argument("--out", required=True, help="output stem (writes .png and .pdf)")
    args = p.parse_args(argv)
    for r in args.reports:
        if not Path(r).exists():
            p.error(f"{r} does not exist (run `causal-wm intervene` first)")
    print("\n".join(map(str, plot(args.reports, args.out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
