"""Predicted vs true rollouts: object trajectories imagined by the model (latents projected to positions by a linear
map, or decoded by a state decoder) against the simulator's, plus decoded frames where the model has a decoder.

Reads RUN/examples.npz (written by `causal-wm evaluate`) only.

    python paper_figures/rollouts.py --examples runs/NAME/examples.npz --out paper_figures/out/rollouts
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paper_figures.common import OKABE_ITO, plt, save  # noqa: E402


def plot(examples: str, out: str):
    ex = np.load(examples)
    true, pred, counts = ex["true_positions"], ex["pred_positions"], ex["num_objects"]
    episodes = len(true)
    decoded = "decoded_frames" in ex.files
    rows = 2 if decoded else 1
    fig, axes = plt.subplots(rows, episodes, figsize=(2.6 * episodes, 2.7 * rows), squeeze=False)
    for e in range(episodes):
        ax = axes[0, e]
        for i in range(int(counts[e])):
            colour = OKABE_ITO[i % len(OKABE_ITO)]
            ax.plot(true[e, :, i, 0], true[e, :, i, 1], "-", color=colour, lw=1.5)
            ax.plot(pred[e, :, i, 0], pred[e, :, i, 1], "--", color=colour, lw=1.2)
            ax.plot(true[e, 0, i, 0], true[e, 0, i, 1], "o", color=colour, ms=4)
        ax.invert_yaxis()
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"episode {e}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if decoded:
            strip = np.concatenate(list(ex["decoded_frames"][e, :: max(1, len(true[e]) // 4)][:4]), axis=1)
            axes[1, e].imshow(strip)
            axes[1, e].set_axis_off()
    axes[0, 0].plot([], [], "k-", label="simulator")
    axes[0, 0].plot([], [], "k--", label="model (imagined)")
    axes[0, 0].legend(frameon=False, fontsize=7, loc="best")
    fig.suptitle(f"{true.shape[1] - 1}-step imagined rollouts vs the simulator (dot: start)", fontsize=10, y=1.06)
    return save(fig, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", required=True, help="RUN/examples.npz")
    p.add_argument("--out", required=True, help="output stem (writes .png and .pdf)")
    args = p.parse_args(argv)
    if not Path(args.examples).exists():
        p.error(f"{args.examples} does not exist (run `causal-wm evaluate` first)")
    print("\n".join(map(str, plot(args.examples, args.out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
