"""Slot masks over frames: the input frame, the simulator's object masks and each slot's mask, for one episode.

Reads RUN/examples.npz (written by `causal-wm evaluate`) only.

    python paper_figures/slot_masks.py --examples runs/NAME/examples.npz --out paper_figures/out/slot_masks
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from matplotlib.colors import ListedColormap  # noqa: E402

from paper_figures.common import OKABE_ITO, plt, save  # noqa: E402

IDS = ListedColormap(["#000000", *OKABE_ITO[:7], "#999999", "#FFFFFF"])  # background black, then objects 0..8


def plot(examples: str, out: str, episode: int = 0, frames: int = 4):
    ex = np.load(examples)
    if "slot_masks" not in ex.files:
        raise SystemExit(f"{examples} has no slot masks (a state-encoder run has none)")
    masks = ex["slot_masks"][episode].astype(np.float32)  # (T, K, h, w)
    t_idx = np.linspace(0, masks.shape[0] - 1, min(frames, masks.shape[0])).round().astype(int)
    k = masks.shape[1]
    rows = 2 + k
    fig, axes = plt.subplots(rows, len(t_idx), figsize=(1.5 * len(t_idx), 1.5 * rows), squeeze=False)
    for col, t in enumerate(t_idx):
        axes[0, col].imshow(ex["frames"][episode, t])
        axes[0, col].set_title(f"t = {t}", fontsize=8)
        if "true_masks" in ex.files:
            axes[1, col].imshow(ex["true_masks"][episode, t], cmap=IDS, vmin=0, vmax=9, interpolation="nearest")
        for s in range(k):
            axes[2 + s, col].imshow(masks[t, s], cmap="viridis", vmin=0, vmax=1)
    labels = ["frame", "objects"] + [f"slot {s}" for s in range(k)]
    for row, label in enumerate(labels):
        axes[row, 0].set_ylabel(label, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("slot masks over frames (viridis: 0 to 1)", fontsize=10)
    return save(fig, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", required=True, help="RUN/examples.npz")
    p.add_argument("--out", required=True, help="output stem (writes .png and .pdf)")
    p.add_argument("--episode", type=int, default=0)
    args = p.parse_args(argv)
    if not Path(args.examples).exists():
        p.error(f"{args.examples} does not exist (run `causal-wm evaluate` first)")
    print("\n".join(map(str, plot(args.examples, args.out, args.episode))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
