"""Write an NRI-style springs dataset as a *state-only* causal-wm HDF5 file, as another simulator would.

The system follows Kipf et al. (2018, Neural Relational Inference): N particles in a box with elastic walls, a random
undirected graph (each pair joined with probability p), Hooke forces F_i = -k sum_j A_ij (x_i - x_j) with zero rest
length, integrated with leapfrog at a fine step and subsampled. Written from scratch here (numpy, vectorised over
episodes); it is independent of pymunk and of `envs`, which is the point: it exercises the path users take to bring
their own trajectories (`states`, `num_objects`, `adjacency` and the schema attributes, no images, no actions).

    python analysis/nri_springs.py --episodes 1000 --seed 0 --out data/nri5_train.h5
    causal-wm train --data data/nri5_train.h5 --encoder state --out runs/nri5
    causal-wm probe runs/nri5 --data data/nri5_test.h5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import h5py
import numpy as np

FEATURES = ["x", "y", "vx", "vy"]


def simulate(
    episodes: int,
    num_objects: int = 5,
    steps: int = 49,
    *,
    edge_prob: float = 0.5,
    box: float = 5.0,
    strength: float = 0.1,
    dt: float = 0.001,
    sample_every: int = 100,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """States (E, T, N, 4) float32 and symmetric adjacency (E, N, N) uint8 of NRI-style springs episodes."""
    rng = np.random.default_rng(seed)
    n = num_objects
    upper = np.triu(rng.random((episodes, n, n)) < edge_prob, k=1)
    adj = (upper | upper.transpose(0, 2, 1)).astype(np.float64)  # (E, N, N)
    pos = rng.normal(0.0, 0.5, (episodes, n, 2))
    vel = rng.normal(0.0, 1.0, (episodes, n, 2))
    vel *= 0.5 / np.linalg.norm(vel, axis=-1, keepdims=True)

    def force(p: np.ndarray) -> np.ndarray:
        diff = p[:, :, None, :] - p[:, None, :, :]  # (E, N, N, 2) x_i - x_j
        return -strength * (adj[..., None] * diff).sum(2)

    def walls(p: np.ndarray, v: np.ndarray) -> None:
        over, under = p > box, p < -box
        p[over] = 2 * box - p[over]
        v[over] = -np.abs(v[over])
        p[under] = -2 * box - p[under]
        v[under] = np.abs(v[under])

    out = np.zeros((episodes, steps, n, 4), dtype=np.float32)
    acc = force(pos)
    for t in range(steps * sample_every):
        if t % sample_every == 0:
            out[:, t // sample_every, :, :2], out[:, t // sample_every, :, 2:] = pos, vel
        vel = vel + 0.5 * dt * acc
        pos = pos + dt * vel
        walls(pos, vel)
        acc = force(pos)
        vel = vel + 0.5 * dt * acc
    return out, adj.astype(np.uint8)


def write(path: str | os.PathLike, states: np.ndarray, adjacency: np.ndarray, config: dict, *, overwrite: bool) -> None:
    """Write a state-only file atomically (temporary file, then rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema_version"] = 1
            f.attrs["scene"] = "nri_springs"
            f.attrs["config"] = json.dumps(config, sort_keys=True)
            f.attrs["state_features"] = json.dumps(FEATURES)
            f.create_dataset("states", data=states)
            f.create_dataset("num_objects", data=np.full(len(states), states.shape[2], dtype=np.int64))
            f.create_dataset("adjacency", data=adjacency)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="output HDF5 file")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--objects", type=int, default=5)
    p.add_argument("--steps", type=int, default=49, help="frames per episode (NRI: 49)")
    p.add_argument("--edge-prob", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--smoke", action="store_true", help="8 short episodes, for tests")
    args = p.parse_args(argv)
    if args.smoke:
        args.episodes, args.steps = 8, 12
    if args.episodes < 1 or args.objects < 2 or args.steps < 3 or not 0 <= args.edge_prob <= 1:
        p.error("need --episodes >= 1, --objects >= 2, --steps >= 3 and --edge-prob in [0, 1]")
    states, adj = simulate(args.episodes, args.objects, args.steps, edge_prob=args.edge_prob, seed=args.seed)
    config = {k: v for k, v in vars(args).items() if k not in ("out", "overwrite", "smoke")} | {"simulator": "nri"}
    try:
        write(args.out, states, adj, config, overwrite=args.overwrite)
    except FileExistsError as err:
        print(f"nri_springs: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {args.episodes} episodes x {args.steps} frames x {args.objects} particles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
