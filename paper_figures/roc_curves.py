"""ROC curves of every probing method and classical baseline, pooled over the scored pairs of a probe.

Reads RUN/probe_scores.npz (written by `causal-wm probe`) only.

    python paper_figures/roc_curves.py --scores runs/NAME/probe_scores.npz --out paper_figures/out/roc_curves
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paper_figures.common import plt, save  # noqa: E402


def roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates over all thresholds (ties entered together)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp, fp = np.cumsum(y)[last], (last + 1) - np.cumsum(y)[last]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def pairs(raw, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Pooled (scores, labels) of the kept off-diagonal pairs for the array ``name``."""
    s, adj = raw[name], raw["adjacency"].astype(bool)
    n = adj.shape[1]
    real = np.arange(n)[None] < raw["num_objects"][:, None]
    kept = raw["matched"] if name.startswith("scores_") else real
    mask = kept[:, :, None] & kept[:, None, :] & ~np.eye(n, dtype=bool)[None]
    return np.nan_to_num(s[mask].astype(float)), adj[mask]


def plot(scores_path: str, out: str, title: str | None = None):
    from causal_wm import metrics

    raw = np.load(scores_path)
    names = [k for k in raw.files if k.startswith("scores_")] + [k for k in raw.files if k.startswith("baseline_")]
    if not names:
        raise SystemExit(f"{scores_path} holds no scores")
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for name in names:
        s, y = pairs(raw, name)
        if y.all() or not y.any():
            continue
        fpr, tpr = roc(s, y)
        label = name.removeprefix("scores_").replace("baseline_", "") + (" (baseline)" if "baseline_" in name else "")
        style = "--" if name.startswith("baseline_") else "-"  # the model's readings solid, the baselines dashed
        ax.plot(fpr, tpr, style, label=f"{label}: AUROC {metrics.auroc(s, y):.3f}", lw=1.6)
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title(title or "learned edges vs ground-truth adjacency")
    ax.legend(loc="lower right", frameon=False)
    return save(fig, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scores", required=True, help="probe_scores.npz")
    p.add_argument("--out", required=True, help="output stem (writes .png and .pdf)")
    p.add_argument("--title")
    args = p.parse_args(argv)
    if not Path(args.scores).exists():
        p.error(f"{args.scores} does not exist (run `causal-wm probe` first)")
    print("\n".join(map(str, plot(args.scores, args.out, args.title))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
