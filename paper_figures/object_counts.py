"""Hits@1 and edge AUROC against the object count, with 95% CIs over seeds and the training range shaded.

Reads OUT/summary.json written by `analysis/object_counts.py` only.

    python paper_figures/object_counts.py --summary results/object_counts_state/summary.json \
        --out paper_figures/out/object_counts
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paper_figures.common import plt, save  # noqa: E402

SERIES = (
    ("hits_at_1_1", "Hits@1, 1 step"),
    ("hits_at_1_10", "Hits@1, 10 steps"),
    ("auroc", "edge AUROC (best probe per cell)"),
    ("auroc_gates", "edge AUROC (gates)"),  # summaries written before per-method AUROCs lack it: not drawn
)


def plot(summary_path: str, out: str):
    summary = json.loads(Path(summary_path).read_text())
    counts = sorted(int(c) for c in summary["counts"])
    lo, _, hi = summary["train_counts"].partition("-")
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.axvspan(int(lo) - 0.5, int(hi or lo) + 0.5, color="0.9", label=f"training counts {summary['train_counts']}")
    for i, (key, label) in enumerate(SERIES):
        rows = [summary["counts"][str(c)].get(key) for c in counts]
        if all(r is None for r in rows):
            continue
        mean = np.array([np.nan if r is None else r["mean"] for r in rows])
        low = np.array([np.nan if r is None or r["ci"][0] is None else r["ci"][0] for r in rows])
        high = np.array([np.nan if r is None or r["ci"][1] is None else r["ci"][1] for r in rows])
        ax.plot(counts, mean, marker="os^D"[i], label=label)
        ax.fill_between(counts, low, high, alpha=0.2)
    ax.set(xlabel="objects in the test scene", ylabel="score", ylim=(0, 1.02), xticks=counts)
    ax.set_title(f"{summary['encoder']} encoder, {len(summary['seeds'])} seeds (95% CI)")
    ax.legend(frameon=False, fontsize=7, loc="lower left")
    return save(fig, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--summary", required=True, help="summary.json of analysis/object_counts.py")
    p.add_argument("--out", required=True, help="output stem (writes .png and .pdf)")
    args = p.parse_args(argv)
    if not Path(args.summary).exists():
        p.error(f"{args.summary} does not exist (run analysis/object_counts.py first)")
    print("\n".join(map(str, plot(args.summary, args.out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
