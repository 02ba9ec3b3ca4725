"""The learned interaction graph beside the true graph, drawn with networkx over a frame of the episode.

Edge width is the learned score (the probe's best method, rescaled to [0, 1] within the episode). Reads
RUN/probe_scores.npz, RUN/probe.json and the frame and positions from the probed dataset; never runs a model.

    python paper_figures/learned_graph.py --run runs/NAME --data data/test.h5 --episode 0 --out paper_figures/out/graph
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paper_figures.common import OKABE_ITO, plt, save  # noqa: E402


def plot(run: str, data: str, episode: int, out: str, method: str | None = None):
    raw = np.load(Path(run) / "probe_scores.npz")
    result = json.loads((Path(run) / "probe.json").read_text())
    method = method or result["best_method"]
    if f"scores_{method}" not in raw.files:
        raise SystemExit(f"{run}/probe_scores.npz has no scores for {method!r}")
    if not 0 <= episode < len(raw["adjacency"]):
        raise SystemExit(f"episode {episode} is not in the probe (0..{len(raw['adjacency']) - 1})")
    with h5py.File(data, "r") as f:
        states = f["states"][episode, 0]
        frame = f["obs"][episode, 0] if "obs" in f else None
        arena = json.loads(f.attrs["config"]).get("arena_size")
    n = int(raw["num_objects"][episode])
    true = raw["adjacency"][episode, :n, :n].astype(bool)
    score = raw[f"scores_{method}"][episode, :n, :n].astype(float)
    threshold = result["methods"][method]["adjacency"].get("threshold")
    finite = np.isfinite(score)
    lo, hi = (np.nanmin(score[finite]), np.nanmax(score[finite])) if finite.any() else (0.0, 1.0)
    width = np.where(finite, (score - lo) / max(hi - lo, 1e-12), 0.0)
    pos = states[:n, :2]
    if frame is not None:
        scale = frame.shape[0] / (arena or frame.shape[0])
        pos = pos * scale
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 4.0))
    for ax, title, adj, w in (
        (axes[0], "true graph (adjacency)", true, true.astype(float)),
        (axes[1], f"learned: {method}", np.ones_like(true) & ~np.eye(n, dtype=bool), width),
    ):
        if frame is not None:
            ax.imshow(frame, extent=(0, frame.shape[1], frame.shape[0], 0))
        else:
            ax.invert_yaxis()
            ax.set_aspect("equal")
        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        edges = [(i, j) for i in range(n) for j in range(n) if adj[i, j] and w[i, j] > 0.02]
        g.add_edges_from(edges)
        layout = {i: tuple(pos[i]) for i in range(n)}
        nx.draw_networkx_nodes(g, layout, ax=ax, node_size=120, node_color="white", edgecolors="black")
        nx.draw_networkx_labels(g, layout, ax=ax, font_size=7)
        colours = [OKABE_ITO[0] if true[i, j] else OKABE_ITO[3] for i, j in edges]
        nx.draw_networkx_edges(
            g,
            layout,
            ax=ax,
            edgelist=edges,
            width=[0.3 + 3.0 * w[i, j] for i, j in edges],
            edge_color=colours,
            arrowsize=8,
            connectionstyle="arc3,rad=0.15",
            node_size=120,
        )
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    caption = "blue: true edge, vermillion: not an edge; width: learned score"
    if threshold is not None:
        caption += f" (threshold {threshold:.3g} on training episodes)"
    fig.text(0.5, 0.01, caption, ha="center", fontsize=8)
    return save(fig, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True, help="the dataset the run was probed on")
    p.add_argument("--episode", type=int, default=0)
    p.add_argument("--method", help="probing method (default: the probe's best)")
    p.add_argument("--out", required=True, help="output stem (writes .png and .pdf)")
    args = p.parse_args(argv)
    for need in (Path(args.run) / "probe_scores.npz", Path(args.data)):
        if not need.exists():
            p.error(f"{need} does not exist (run `causal-wm probe` first)")
    print("\n".join(map(str, plot(args.run, args.data, args.episode, args.out, args.method))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
