"""Can gcm's graph falsification tell a right interaction graph from wrong ones? A check on simulator data alone.

For each seed, one episode's objects and springs are sampled, `causal_wm.interventions.unrolled_samples` simulates
the time-unrolled data that ``causal-wm intervene`` tests graphs on, and `graph_falsification` is run on five
graphs: the true one, the true one without one pair of objects (both directions), the empty graph, the complete graph
and a random graph with the true number of edges. Each row gives gcm's verdict, the share of local Markov conditions
the graph violates (5% level) and the object edges gcm's causal-minimality check would remove, with how many of those
are true non-edges.

    python analysis/falsification_check.py --seeds 0 1 2                  # springs, 5 balls (about 20 s per seed)
    python analysis/falsification_check.py --scene charges --seeds 0 1 2
    python analysis/falsification_check.py --smoke                        # seconds
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

import envs
from causal_wm import interventions as iv
from causal_wm.config import write_json


def graphs(true: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The true graph and four wrong ones (same shape, no self-loops)."""
    n = len(true)
    off = ~np.eye(n, dtype=bool)
    out = {"true": true}
    if true.any():
        minus = true.copy()
        i, j = np.argwhere(true)[rng.integers(true.sum())]
        minus[i, j] = minus[j, i] = False
        out["true minus one pair"] = minus
    out["empty"] = np.zeros_like(true)
    out["complete"] = off.copy()
    pairs = np.argwhere(off)
    random = np.zeros_like(true)
    chosen = pairs[rng.choice(len(pairs), size=int(true.sum()), replace=False)]
    random[chosen[:, 0], chosen[:, 1]] = True
    out["random"] = random
    return out


def check(scene_name: str, seed: int, num_objects: int, rollouts: int) -> list[dict]:
    scene = envs.make_scene(scene_name)
    spec = scene.sample_spec(np.random.default_rng(seed), num_objects)
    true = scene.rollout(spec, np.zeros(2, dtype=np.int64), render_frames=False).adjacency[0].astype(bool)
    data = iv.unrolled_samples(scene, spec, rollouts=rollouts, seed=seed)
    non_edges = {f"{i}->{j}" for i, j in np.argwhere(~true & ~np.eye(len(true), dtype=bool))}
    rows = []
    for name, graph in graphs(true, np.random.default_rng(seed + 1000)).items():
        start = time.perf_counter()
        f = iv.graph_falsification(graph, data, seed)
        removed = f["superfluous_edges"]
        rows.append(
            dict(
                seed=seed,
                graph=name,
                edges=int(graph.sum()),
                rows=len(data),
                falsified=f["falsified"],
                violations=f["violations"],
                tests=f["tests"],
                superfluous=removed,
                superfluous_non_edges=len(set(removed) & non_edges),
                non_edges=len(non_edges),
                seconds=round(time.perf_counter() - start, 2),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", default="springs", choices=sorted(envs.SCENES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--num-objects", type=int, default=5)
    ap.add_argument("--rollouts", type=int, default=60, help="simulated runs per seed (40 steps each)")
    ap.add_argument("--out", type=Path, default=None, help="also write the rows to this JSON file")
    ap.add_argument("--smoke", action="store_true", help="one seed, 3 objects, 10 rollouts (seconds)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seeds, args.num_objects, args.rollouts = [0], 3, 10
    if args.num_objects < 2 or args.rollouts < 1:
        ap.error("--num-objects must be >= 2 and --rollouts >= 1")
    print(f"hardware: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("| seed | graph | edges | rows | falsified | conditions violated | superfluous edges (non-edges of them) |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for seed in args.seeds:
        for r in check(args.scene, seed, args.num_objects, args.rollouts):
            rows.append(r)
            print(
                f"| {r['seed']} | {r['graph']} | {r['edges']} | {r['rows']} | {r['falsified']} | "
                f"{r['violations']}/{r['tests']} | {len(r['superfluous'])} ({r['superfluous_non_edges']} of "
                f"{r['non_edges']} non-edges) |"
            )
    if args.out is not None:
        write_json(args.out, {"scene": args.scene, "rows": rows})
        print(f"wrote {args.out}")
    if args.smoke:  # the true graph must violate a smaller share of its conditions than the empty graph
        share = {r["graph"]: r["violations"] / max(r["tests"], 1) for r in rows}
        ok = share["true"] < share["empty"]
        print("smoke OK" if ok else f"smoke FAILED: shares of violated conditions {share}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
