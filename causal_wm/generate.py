"""Parallel, sharded, atomic dataset generation.

Episode ``e`` is simulated from the seed sequence ``(seed, e)``, so its content does not depend on how episodes are
split between workers. Workers write shards of ``shard_size`` episodes to HDF5 files in a hidden directory beside
the output; the parent copies their compressed chunks, in episode order, into a temporary file (no recompression),
deletes each shard once merged, and renames the temporary file to ``--out`` only when everything is written. A
killed run leaves no file at ``--out``, and an existing ``--out`` is only replaced on success.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

import envs
from causal_wm import __version__
from causal_wm.config import GenerateConfig, to_dict
from causal_wm.data import contact_onsets, copy_episodes, create_layout, write_attrs
from causal_wm.errors import CausalWMError, check_stop


class GenerateError(CausalWMError):
    """A generation request that cannot be carried out."""


@dataclass
class SceneStats:
    """Running sums of the scene statistics reported next to every result."""

    speed_sum: float = 0.0  # pixels moved per frame, summed over real objects and frames
    speed_count: int = 0
    collisions: int = 0  # contact onsets between objects
    extension_sum: float = 0.0  # |spring length - rest length| in pixels
    extension_count: int = 0
    edges: int = 0
    pairs: int = 0
    episodes: int = 0
    by_count: dict = field(default_factory=dict)

    def add(self, other: SceneStats) -> None:
        for k, v in vars(other).items():
            if k == "by_count":
                for n, c in v.items():
                    self.by_count[n] = self.by_count.get(n, 0) + c
            else:
                setattr(self, k, getattr(self, k) + v)

    def summary(self) -> dict:
        div = lambda a, b: float(a / b) if b else 0.0  # noqa: E731
        return {
            "mean_speed_px_per_frame": round(div(self.speed_sum, self.speed_count), 4),
            "collisions_per_episode": round(div(self.collisions, self.episodes), 4),
            "mean_spring_extension_px": round(div(self.extension_sum, self.extension_count), 4),
            "edge_density": round(div(self.edges, self.pairs), 4),
            "object_counts": {str(k): v for k, v in sorted(self.by_count.items())},
        }


def _episode_stats(run: envs.Rollout, spec: envs.EpisodeSpec, px: float) -> SceneStats:
    n = spec.num_objects
    pos = run.positions  # (T, N, 2)
    onsets = int(contact_onsets(run.contacts[:, :n, :n]).sum())
    stats = SceneStats(
        speed_sum=float(np.linalg.norm(np.diff(pos, axis=0), axis=-1).sum() * px),
        speed_count=(len(pos) - 1) * n,
        collisions=onsets,
        edges=int(run.adjacency[0].sum()),
        pairs=n * (n - 1),
        episodes=1,
        by_count={n: 1},
    )
    if len(spec.springs):
        length = np.linalg.norm(pos[:, spec.springs[:, 0]] - pos[:, spec.springs[:, 1]], axis=-1)  # (T, S)
        stats.extension_sum = float(np.abs(length - spec.spring_rest).sum() * px)
        stats.extension_count = length.size
    return stats


def simulate_episode(scene: envs.Scene, cfg: GenerateConfig, episode: int) -> tuple[dict, SceneStats]:
    """All arrays of one episode, padded to the scene's maximum object count."""
    rng = np.random.default_rng([cfg.seed, episode])
    spec = scene.sample_spec(rng)
    actions = scene.sample_actions(rng, cfg.steps, spec.num_objects)
    run = scene.rollout(spec, actions, render_frames=cfg.images)
    n, nmax = spec.num_objects, scene.config.max_objects
    pad = lambda a, axes: np.pad(a, [(0, nmax - n) if ax in axes else (0, 0) for ax in range(a.ndim)])  # noqa: E731
    out = {
        "states": pad(run.states, {1}),
        "num_objects": n,
        "adjacency": pad(run.adjacency[0], {0, 1}),
        "contacts": pad(run.contacts, {1, 2}),
        "actions": run.actions.astype(np.int32),
    }
    if cfg.influence_steps > 0:
        infl = scene.influence(spec, actions, steps=cfg.influence_steps, impulse=cfg.influence_impulse, factual=run)
        out["influence"] = pad(infl, {0, 1})
    if cfg.images:
        out["obs"], out["masks"] = run.frames, run.masks
    px = scene.config.image_size / scene.config.arena_size
    return out, _episode_stats(run, spec, px)


def _layout_kwargs(cfg: GenerateConfig, scene: envs.Scene, num_episodes: int) -> dict:
    return dict(
        num_episodes=num_episodes,
        steps=cfg.steps,
        max_objects=scene.config.max_objects,
        num_features=len(envs.STATE_FEATURES),
        image_size=cfg.image_size if cfg.images else None,
        with_actions=True,
        with_contacts=True,
        with_influence=cfg.influence_steps > 0,
    )


def write_shard(args: tuple[GenerateConfig, int, int, str]) -> tuple[str, int, SceneStats]:
    """Simulate episodes [start, stop) into the HDF5 file ``path``; returns (path, count, stats)."""
    cfg, start, stop, path = args
    scene = envs.make_scene(cfg.scene, **cfg.scene_config())
    stats = SceneStats()
    block = 8  # episodes per write call: fewer HDF5 calls, and a small buffer reused within the shard
    buffers: dict[str, np.ndarray] = {}
    with h5py.File(path, "w") as f:
        create_layout(f, **_layout_kwargs(cfg, scene, stop - start))
        for k, e in enumerate(range(start, stop)):
            check_stop()
            arrays, s = simulate_episode(scene, cfg, e)
            stats.add(s)
            for key, value in arrays.items():
                if key not in buffers:
                    buffers[key] = np.empty((block, *f[key].shape[1:]), f[key].dtype)
                buffers[key][k % block] = value
            if k % block == block - 1 or e == stop - 1:
                first = k - k % block
                for key, value in buffers.items():
                    f[key][first : k + 1] = value[: k + 1 - first]
    return path, stop - start, stats


def check_config(cfg: GenerateConfig) -> envs.Scene:
    """Validate ``cfg`` without touching the disk; returns the scene."""
    if cfg.episodes <= 0:
        raise GenerateError(f"--episodes must be positive, got {cfg.episodes}")
    if cfg.steps < 2:
        raise GenerateError(f"--steps must be at least 2, got {cfg.steps}")
    if cfg.influence_steps < 0:
        raise GenerateError(f"--influence-steps must be >= 0, got {cfg.influence_steps}")
    if cfg.shard_size <= 0:
        raise GenerateError(f"--shard-size must be positive, got {cfg.shard_size}")
    try:
        return envs.make_scene(cfg.scene, **cfg.scene_config())
    except (envs.ConfigError, TypeError) as err:
        raise GenerateError(str(err)) from None


def _start_method() -> str:
    """fork when this process is single-threaded, else forkserver (spawn where neither exists)."""
    methods = mp.get_all_start_methods()
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux: assume threads may be running
        threads = 2
    if "fork" in methods and threads == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def generate(
    cfg: GenerateConfig, out: str | os.PathLike, *, workers: int = 1, overwrite: bool = False, progress: bool = True
) -> dict:
    """Generate the dataset described by ``cfg`` at ``out``; returns the scene statistics and timing."""
    out = Path(out)
    scene = check_config(cfg)
    if workers < 1:
        raise GenerateError(f"--workers must be at least 1, got {workers}")
    if out.exists() and not overwrite:
        raise GenerateError(f"{out} exists; pass --overwrite to replace it")
    if out.is_dir():
        raise GenerateError(f"{out} is a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f".{out.name}.{os.getpid()}"
    shard_dir, tmp = out.parent / f"{tag}.shards", out.parent / f"{tag}.tmp"
    shard_dir.mkdir()
    jobs = [
        (cfg, s, min(s + cfg.shard_size, cfg.episodes), str(shard_dir / f"{i:06d}.h5"))
        for i, s in enumerate(range(0, cfg.episodes, cfg.shard_size))
    ]
    stats = SceneStats()
    t0 = time.perf_counter()
    # Workers start before any HDF5 file is open here. fork is fastest and needs no `if __name__ == "__main__"`
    # guard in user scripts, but forking a process that already runs other threads (torch's or OpenMP's pools after
    # training in the same process, numba, ...) can deadlock the child on a lock held at fork time: then forkserver.
    pool = mp.get_context(_start_method()).Pool(workers) if workers > 1 else None
    try:
        from tqdm import tqdm

        with (
            h5py.File(tmp, "w") as f,
            tqdm(total=cfg.episodes, unit="ep", disable=not progress, desc=f"generate {cfg.scene}") as bar,
        ):
            create_layout(f, **_layout_kwargs(cfg, scene, cfg.episodes))
            results = pool.imap(write_shard, jobs) if pool else map(write_shard, jobs)
            for (_, start, _, _), (path, count, s) in zip(jobs, results, strict=True):
                check_stop()
                with h5py.File(path, "r") as shard:
                    copy_episodes(shard, f, start)
                os.remove(path)
                stats.add(s)
                bar.update(count)
            summary = stats.summary()
            config = {
                **to_dict(cfg),
                "scene_config": scene.config.to_dict(),
                "arena_size": scene.config.arena_size,
                "dt": scene.config.dt,
                "causal_wm_version": __version__,
            }
            write_attrs(f, scene=cfg.scene, config=config, state_features=envs.STATE_FEATURES, stats=summary)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        shutil.rmtree(shard_dir, ignore_errors=True)
    seconds = time.perf_counter() - t0
    return {**summary, "seconds": seconds, "frames_per_second": cfg.episodes * cfg.steps / seconds}
