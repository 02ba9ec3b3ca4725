"""HDF5 episode datasets: schema, validation, layout/merge helpers, lazy readers and torch datasets.

A dataset file holds E episodes of T steps with up to N objects (F state features each):

- root attrs ``schema_version`` (int), ``scene`` (str), ``config`` (JSON str), ``state_features``
  (JSON list starting with x, y, vx, vy) and optionally ``stats`` (JSON str);
- required datasets ``states`` (E, T, N, F) float32, ``num_objects`` (E,) integer and
  ``adjacency`` (E, N, N) uint8 where [e, i, j] = 1 means object i acts on object j;
- optional datasets ``actions`` (E, T-1), ``obs`` (E, T, H, W, 3), ``masks`` (E, T, H, W),
  ``contacts`` (E, T, N, N) and ``influence`` (E, N, N).

Object slots past ``num_objects[e]`` are zero padding. Nothing here loads a whole dataset into memory:
readers slice one episode (or window), and ``summary``/``copy_episodes`` stream bounded blocks.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from causal_wm.errors import CausalWMError

SCHEMA_VERSION = 1

# name -> (dtype kind, dims); dims are symbolic axis sizes shared across datasets ("T-1" = steps - 1).
REQUIRED_DATASETS: dict[str, tuple[str, tuple[str | int, ...]]] = {
    "states": ("float32", ("E", "T", "N", "F")),
    "num_objects": ("integer", ("E",)),
    "adjacency": ("uint8", ("E", "N", "N")),
}
OPTIONAL_DATASETS: dict[str, tuple[str, tuple[str | int, ...]]] = {
    "actions": ("integer", ("E", "T-1")),
    "obs": ("uint8", ("E", "T", "H", "W", 3)),
    "masks": ("uint8", ("E", "T", "H", "W")),
    "contacts": ("uint8", ("E", "T", "N", "N")),
    "influence": ("float32", ("E", "N", "N")),
}
REQUIRED_ATTRS = ("schema_version", "scene", "config", "state_features")
STATE_PREFIX = ("x", "y", "vx", "vy")

PER_STEP_KEYS = frozenset({"states", "obs", "masks", "contacts"})  # sliced by window()
_DIM_NOUNS = {"E": "episodes", "T": "steps", "N": "object slots", "F": "features", "H": "rows", "W": "cols"}
_BLOCK_BYTES = 64 << 20  # memory bound for streamed reads (summary, fallback copies, validation)
_CHUNK_CACHE_BYTES = 16 << 20  # per-dataset HDF5 chunk cache for readers


class DatasetError(CausalWMError):
    """A dataset file was refused; the message is one line naming the file and the offending key."""


@dataclass(frozen=True)
class DatasetInfo:
    """What ``validate`` learned about a dataset file (no array data)."""

    path: str
    scene: str
    num_episodes: int
    steps: int
    max_objects: int
    num_features: int
    state_features: list[str]
    image_size: int | None  # side of the stored square frames, None without obs/masks
    has_images: bool
    optional_keys: tuple[str, ...]  # optional datasets present, in OPTIONAL_DATASETS order
    config: dict[str, Any]
    stats: dict[str, Any]


# ----------------------------------------------------------------------------------------------- writing


def contact_onsets(contacts: np.ndarray) -> np.ndarray:
    """Per frame t >= 1, how many object pairs i < j begin touching (in contact at t, not at t - 1): (..., T - 1)
    from ``contacts`` (..., T, N, N) (nonzero: touching between t-1 and t). How collisions are counted."""
    iu = np.triu_indices(contacts.shape[-1], 1)
    pairs = np.asarray(contacts)[..., iu[0], iu[1]] != 0  # (..., T, P)
    return (pairs[..., 1:, :] & ~pairs[..., :-1, :]).sum(-1)


def create_layout(
    h5: h5py.Group,
    *,
    num_episodes: int,
    steps: int,
    max_objects: int,
    num_features: int,
    image_size: int | None = None,
    with_actions: bool = True,
    with_contacts: bool = True,
    with_influence: bool = True,
) -> None:
    """Create the (empty, zero-filled) datasets of a dataset file in ``h5``.

    Every per-episode array is lzf-compressed in chunks of one episode (no shuffle/checksum filters), so
    identical data gives identical chunk bytes and shards can be merged by raw chunk copies
    (``copy_episodes``). ``image_size`` adds ``obs`` and ``masks``. Attrs are the caller's job.
    """
    E, T, N, F = num_episodes, steps, max_objects, num_features
    if min(E, T, N, F) < 1 or (with_actions and T < 2):
        raise ValueError(
            f"create_layout: need episodes, steps, objects, features >= 1 (steps >= 2 with "
            f"actions), got E={E} T={T} N={N} F={F}"
        )

    def make(name: str, shape: tuple[int, ...], dtype: type, chunks: tuple[int, ...]) -> None:
        h5.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, compression="lzf")

    make("states", (E, T, N, F), np.float32, (1, T, N, F))
    make("num_objects", (E,), np.int32, (min(E, 65536),))
    make("adjacency", (E, N, N), np.uint8, (1, N, N))
    if with_actions:
        make("actions", (E, T - 1), np.int32, (1, T - 1))
    if with_contacts:
        make("contacts", (E, T, N, N), np.uint8, (1, T, N, N))
    if with_influence:
        make("influence", (E, N, N), np.float32, (1, N, N))
    if image_size is not None:
        S, k = image_size, min(T, 10)
        make("obs", (E, T, S, S, 3), np.uint8, (1, k, S, S, 3))
        make("masks", (E, T, S, S), np.uint8, (1, k, S, S))


def write_attrs(
    h5: h5py.Group,
    *,
    scene: str,
    config: dict[str, Any],
    state_features: Sequence[str],
    stats: dict[str, Any] | None = None,
) -> None:
    """Write the root attrs of the schema (``schema_version``, ``scene``, JSON ``config``/``state_features``
    and, if given, JSON ``stats``)."""
    h5.attrs["schema_version"] = SCHEMA_VERSION
    h5.attrs["scene"] = scene
    h5.attrs["config"] = json.dumps(config, sort_keys=True)
    h5.attrs["state_features"] = json.dumps(list(state_features))
    if stats is not None:
        h5.attrs["stats"] = json.dumps(stats, sort_keys=True)


def copy_episodes(src: h5py.File, dst: h5py.File, dst_start: int) -> int:
    """Copy every dataset of ``src`` into ``dst`` at episode offset ``dst_start``; return the episode count.

    ``dst`` must already hold matching datasets (``create_layout``) with room for the episodes. Datasets
    with the same one-episode chunks and filters in both files are copied as raw compressed chunks
    (chunks never written in ``src`` are skipped, i.e. left at the fill value of a fresh ``dst``); others
    (e.g. ``num_objects``) are decompressed and copied in bounded slices.
    """
    num = src["states"].shape[0]
    for name, s in src.items():
        if not isinstance(s, h5py.Dataset):
            continue
        if name not in dst:
            raise DatasetError(f"{dst.filename}: no dataset '{name}' to copy into (use create_layout)")
        d = dst[name]
        if s.shape[0] != num or s.shape[1:] != d.shape[1:] or not 0 <= dst_start <= d.shape[0] - num:
            raise DatasetError(
                f"{dst.filename}: cannot copy '{name}' {s.shape} from {src.filename} into "
                f"{d.shape} at episode {dst_start}"
            )
        if _raw_copyable(s, d):
            _copy_chunks(s, d, dst_start)
        else:
            _copy_slices(s, d, dst_start)
    return num


def _filters(ds: h5py.Dataset) -> list[tuple]:
    plist = ds.id.get_create_plist()
    return [plist.get_filter(i) for i in range(plist.get_nfilters())]


def _raw_copyable(s: h5py.Dataset, d: h5py.Dataset) -> bool:
    return (
        s.chunks is not None
        and s.chunks == d.chunks
        and s.chunks[0] == 1
        and s.dtype == d.dtype
        and _filters(s) == _filters(d)
        and np.array_equal(s.fillvalue, d.fillvalue)
    )


def _copy_chunks(s: h5py.Dataset, d: h5py.Dataset, dst_start: int) -> None:
    grid = [range(0, n, c) for n, c in zip(s.shape[1:], s.chunks[1:], strict=True)]
    for e in range(s.shape[0]):
        for rest in itertools.product(*grid):
            if s.id.get_chunk_info_by_coord((e, *rest)).byte_offset is None:  # never written
                continue
            filter_mask, raw = s.id.read_direct_chunk((e, *rest))
            d.id.write_direct_chunk((dst_start + e, *rest), raw, filter_mask)


def _copy_slices(s: h5py.Dataset, d: h5py.Dataset, dst_start: int) -> None:
    step = _block_rows(s.dtype.itemsize * math.prod(s.shape[1:]))
    if s.chunks is not None:  # whole source chunks per read
        step = max(s.chunks[0], step - step % s.chunks[0])
    for a in range(0, s.shape[0], step):
        b = min(a + step, s.shape[0])
        d[dst_start + a : dst_start + b] = s[a:b]


def _block_rows(row_bytes: int) -> int:
    return max(1, _BLOCK_BYTES // max(1, row_bytes))


# -------------------------------------------------------------------------------------------- validation


def _open_h5(path: str) -> h5py.File:
    if not os.path.exists(path):
        raise DatasetError(f"{path}: no such file")
    try:
        return h5py.File(path, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read as HDF5 (truncated or not an HDF5 file): {exc}") from None


def validate(path_or_file: str | os.PathLike | h5py.Group) -> DatasetInfo:
    """Check a dataset file (path or open h5py file) against the schema and describe it.

    Raises ``DatasetError`` (one line naming the file and the key) on the first problem: unreadable
    file, missing/ill-typed attrs or datasets, inconsistent E/T/N/H/W across datasets, non-square frames,
    ``num_objects`` outside [1, N] or a ``schema_version`` newer than ``SCHEMA_VERSION``.
    """
    if isinstance(path_or_file, h5py.Group):
        return _validate_open(path_or_file, path_or_file.file.filename)
    path = os.fspath(path_or_file)
    with _open_h5(path) as h5:
        return _validate_open(h5, path)


def _validate_open(h5: h5py.Group, path: str) -> DatasetInfo:
    def fail(msg: str) -> None:
        raise DatasetError(f"{path}: {msg}")

    present = set(h5.keys())
    if not present & set(REQUIRED_DATASETS):
        found = ", ".join(f"'{k}'" for k in sorted(present)) or "nothing"
        fail(
            f"not a causal-wm dataset: none of the required datasets "
            f"{', '.join(map(repr, REQUIRED_DATASETS))} (found {found})"
        )
    for name in REQUIRED_ATTRS:
        if name not in h5.attrs:
            fail(f"missing required attr '{name}'")
    version = h5.attrs["schema_version"]
    if not isinstance(version, int | np.integer) or isinstance(version, bool):
        fail(f"attr 'schema_version' must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        fail(f"schema_version {version} is newer than this causal-wm supports ({SCHEMA_VERSION}); upgrade causal-wm")
    if version < 1:
        fail(f"attr 'schema_version' {version} is invalid (expected 1..{SCHEMA_VERSION})")

    scene = _str_attr(h5, "scene", path)
    config = _json_attr(h5, "config", path, dict)
    features = _json_attr(h5, "state_features", path, list)
    stats = _json_attr(h5, "stats", path, dict) if "stats" in h5.attrs else {}
    if not all(isinstance(f, str) for f in features) or tuple(features[:4]) != STATE_PREFIX:
        fail(f"attr 'state_features' must start with {', '.join(STATE_PREFIX)} (got {features})")

    sizes: dict[str, int] = {}
    source: dict[str, str] = {}
    for name, spec in REQUIRED_DATASETS.items():
        if name not in h5:
            fail(f"missing required dataset '{name}'")
        _check_dataset(h5, name, spec, sizes, source, fail)
    optional = tuple(k for k in OPTIONAL_DATASETS if k in h5)
    for name in optional:
        _check_dataset(h5, name, OPTIONAL_DATASETS[name], sizes, source, fail)

    E, T, N, F = (sizes[k] for k in "ETNF")
    if min(E, T, N) < 1:
        fail(f"dataset 'states' has an empty axis {h5['states'].shape}")
    if len(features) != F:
        fail(f"attr 'state_features' names {len(features)} features but 'states' has {F}")
    if "H" in sizes and sizes["H"] != sizes["W"]:
        fail(f"dataset '{source['H']}' has {sizes['H']}x{sizes['W']} frames, expected square images")
    lo, hi = _min_max(h5["num_objects"])
    if lo < 1 or hi > N:
        fail(f"dataset 'num_objects' must lie in [1, {N}] (the object slots of 'states'), found {lo}..{hi}")

    return DatasetInfo(
        path=path,
        scene=scene,
        num_episodes=E,
        steps=T,
        max_objects=N,
        num_features=F,
        state_features=features,
        image_size=sizes.get("H"),
        has_images="obs" in optional,
        optional_keys=optional,
        config=config,
        stats=stats,
    )


def _check_dataset(h5, name, spec, sizes, source, fail) -> None:
    """Check one dataset's dtype and shape, binding symbolic axis sizes on first sight (into ``sizes``)."""
    kind, dims = spec
    ds = h5[name]
    if not isinstance(ds, h5py.Dataset):
        fail(f"'{name}' is a group, expected a dataset")
    if kind == "integer" and not np.issubdtype(ds.dtype, np.integer):
        fail(f"dataset '{name}' has dtype {ds.dtype}, expected an integer dtype")
    if kind != "integer" and ds.dtype != np.dtype(kind):
        fail(f"dataset '{name}' has dtype {ds.dtype}, expected {kind}")
    if ds.ndim != len(dims):
        fail(f"dataset '{name}' has shape {ds.shape}, expected ({', '.join(map(str, dims))})")
    for axis, (got, sym) in enumerate(zip(ds.shape, dims, strict=True)):
        if isinstance(sym, int):
            if got != sym:
                fail(f"dataset '{name}' has size {got} on axis {axis}, expected {sym}")
            continue
        base, off = (sym[:-2], 1) if sym.endswith("-1") else (sym, 0)
        if base not in sizes:
            sizes[base], source[base] = got + off, name
        elif got != sizes[base] - off:
            expected = f" (expected {sizes[base] - off})" if off else ""
            fail(f"'{name}' has {got} {_DIM_NOUNS[base]} but '{source[base]}' has {sizes[base]}{expected}")


def _str_attr(h5: h5py.Group, name: str, path: str) -> str:
    value = h5.attrs[name]
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str):
        raise DatasetError(f"{path}: attr '{name}' must be a string, got {type(value).__name__}")
    return value


def _json_attr(h5: h5py.Group, name: str, path: str, kind: type) -> Any:
    try:
        value = json.loads(_str_attr(h5, name, path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: attr '{name}' is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        got = type(value).__name__
        raise DatasetError(f"{path}: attr '{name}' must be a JSON {kind.__name__}, got {got}")
    return value


def _min_max(ds: h5py.Dataset) -> tuple[int, int]:
    step = _block_rows(ds.dtype.itemsize)
    blocks = (ds[a : a + step] for a in range(0, ds.shape[0], step))
    lo_hi = [(int(b.min()), int(b.max())) for b in blocks]
    return min(lo for lo, _ in lo_hi), max(hi for _, hi in lo_hi)


# --------------------------------------------------------------------------------------------- reading


def _missing_key(path: str, key: str, present: Iterable[str]) -> DatasetError:
    if key in ("obs", "masks"):
        return DatasetError(
            f"{path} has no '{key}' (a state-only file?): use --encoder state or regenerate without --no-images"
        )
    return DatasetError(f"{path} has no '{key}' (it has {', '.join(sorted(present))})")


def _read_window(dsets: dict[str, h5py.Dataset], e: int, t: int, length: int, keys: Iterable[str]):
    """Frames t..t+length-1 of per-step arrays, actions t..t+length-2, per-episode arrays whole."""
    out = {}
    for k in keys:
        if k in PER_STEP_KEYS:
            out[k] = dsets[k][e, t : t + length]
        elif k == "actions":
            out[k] = dsets[k][e, t : t + length - 1]
        else:
            out[k] = dsets[k][e]
    return out


class EpisodeDataset:
    """Lazy, validated view of a dataset file: the HDF5 file stays open and only requested slices are read."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._file = _open_h5(self.path)
        try:
            self._info = _validate_open(self._file, self.path)
        except DatasetError:
            self._file.close()
            raise
        keys = (*REQUIRED_DATASETS, *self._info.optional_keys)
        self._dsets: dict[str, h5py.Dataset] = {k: self._file[k] for k in keys}

    @property
    def info(self) -> DatasetInfo:
        """Validated description of the file."""
        return self._info

    def __len__(self) -> int:
        return self._info.num_episodes

    def __enter__(self) -> EpisodeDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HDF5 file."""
        self._file.close()

    def _keys(self, keys: Iterable[str] | None) -> list[str]:
        if keys is None:
            return list(self._dsets)
        keys = [keys] if isinstance(keys, str) else list(keys)
        for k in keys:
            if k not in self._dsets:
                raise _missing_key(self.path, k, self._dsets)
        return keys

    def _episode_index(self, e: int) -> int:
        e = int(e)
        if not 0 <= e < len(self):
            raise IndexError(f"episode {e} out of range for {len(self)} episodes")
        return e

    def episode(self, e: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """All arrays of episode ``e`` (or only ``keys``), reading nothing else."""
        e = self._episode_index(e)
        return {k: self._dsets[k][e] for k in self._keys(keys)}

    def window(self, e: int, t: int, length: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Steps t..t+length-1 of episode ``e``: per-step arrays (L, ...), actions (L-1,), the rest whole."""
        e = self._episode_index(e)
        if length < 1 or t < 0 or t + length > self._info.steps:
            raise IndexError(f"window t={t} length={length} out of range for {self._info.steps} steps")
        return _read_window(self._dsets, e, t, length, self._keys(keys))

    def summary(self) -> dict[str, Any]:
        """Scene statistics, streamed over bounded episode blocks.

        Keys: scene, episodes, steps, image_size, objects_min/mean/max, edge_density (adjacency over real
        off-diagonal pairs), mean_speed and speed_unit (px/frame when config has image_size and arena_size,
        else state units/step; real objects only), collisions_per_episode (contact onsets of pairs i<j
        between t-1 and t; None without 'contacts'), then any other keys of the ``stats`` attr.
        """
        info, d = self._info, self._dsets
        E, T, N = info.num_episodes, info.steps, info.max_objects
        has_contacts = "contacts" in d
        step = _block_rows(T * N * 2 * 8 + N * N + (T * N * N if has_contacts else 0))
        off_diag = ~np.eye(N, dtype=bool)  # (N, N)
        n_sum, n_min, n_max, edges, pairs, onsets, dist, moves = 0, N, 0, 0, 0, 0, 0.0, 0
        for a in range(0, E, step):
            b = min(a + step, E)
            n = d["num_objects"][a:b].astype(np.int64)  # (B,)
            real = np.arange(N) < n[:, None]  # (B, N)
            pair = real[:, :, None] & real[:, None, :] & off_diag  # (B, N, N)
            n_sum, n_min, n_max = n_sum + n.sum(), min(n_min, n.min()), max(n_max, n.max())
            edges += int((d["adjacency"][a:b] != 0)[pair].sum())
            pairs += int(pair.sum())
            pos = d["states"][a:b, :, :, :2].astype(np.float64)  # (B, T, N, 2)
            speed = np.linalg.norm(np.diff(pos, axis=1), axis=-1)  # (B, T-1, N)
            dist += float((speed * real[:, None, :]).sum())
            moves += int(real.sum()) * (T - 1)
            if has_contacts:
                onsets += int(contact_onsets((d["contacts"][a:b] != 0) & pair[:, None]).sum())
        arena, image = info.config.get("arena_size"), info.config.get("image_size") or info.image_size
        scale, unit = (image / arena, "px/frame") if arena and image else (1.0, "state units/step")
        summary: dict[str, Any] = {
            "scene": info.scene,
            "episodes": E,
            "steps": T,
            "image_size": info.image_size,
            "objects_min": int(n_min),
            "objects_mean": float(n_sum / E),
            "objects_max": int(n_max),
            "edge_density": edges / pairs if pairs else None,
            "mean_speed": scale * dist / moves if moves else None,
            "speed_unit": unit,
            "collisions_per_episode": onsets / E if has_contacts else None,
        }
        for k, v in info.stats.items():
            summary.setdefault(k, v)
        return summary


def open_dataset(path: str | os.PathLike) -> EpisodeDataset:
    """Validate ``path`` and return a lazy ``EpisodeDataset`` on it (close it, or use ``with``)."""
    return EpisodeDataset(path)


def format_summary(summary: dict[str, Any]) -> str:
    """Render a ``summary()`` dict as an aligned two-column terminal table."""

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float | np.floating):
            return f"{v:.4g}"
        if isinstance(v, dict | list):
            return json.dumps(v, sort_keys=True)
        return str(v)

    width = max(map(len, summary), default=0)
    rule = "-" * (width + 2 + max((len(fmt(v)) for v in summary.values()), default=0))
    rows = [f"{k:<{width}}  {fmt(v)}" for k, v in summary.items()]
    return "\n".join([rule, *rows, rule])


# ---------------------------------------------------------------------------------------- torch datasets


class _WindowDatasetBase:
    """Every (episode, start) window of ``length`` steps of a dataset file, as dicts of torch tensors.

    ``WindowDataset(path, length=2, keys=("obs", "states", "actions", "num_objects"), episodes=None)``
    indexes start in [0, T - length] for each episode of ``episodes`` (default: all). An item holds
    obs uint8 (L, H, W, 3) (not converted to float), states float32 (L, N, F), actions int64 (L-1,),
    num_objects int64 scalar, and masks/contacts/adjacency/influence in their stored dtypes if requested.
    The HDF5 file is opened lazily in each process (DataLoader workers included), never pickled.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        length: int = 2,
        keys: Sequence[str] = ("obs", "states", "actions", "num_objects"),
        episodes: Sequence[int] | None = None,
    ):
        self.path = os.fspath(path)
        self.info = validate(self.path)
        present = (*REQUIRED_DATASETS, *self.info.optional_keys)
        for k in keys:
            if k not in present:
                raise _missing_key(self.path, k, present)
        if not 1 <= length <= self.info.steps:
            raise ValueError(f"window length {length} not in [1, {self.info.steps}] (steps of {self.path})")
        E = self.info.num_episodes
        self.episodes = np.arange(E) if episodes is None else np.asarray(episodes, dtype=np.int64).reshape(-1)
        if self.episodes.size and not (0 <= self.episodes.min() and self.episodes.max() < E):
            raise IndexError(f"episodes must lie in [0, {E}) for {self.path}")
        self.keys, self.length = tuple(keys), length
        self._starts = self.info.steps - length + 1
        self._file: h5py.File | None = None
        self._dsets: dict[str, h5py.Dataset] = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.episodes) * self._starts

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_dsets": {}, "_pid": None}

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        i = int(index)
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        if self._file is None or self._pid != os.getpid():  # (re)open per process, e.g. after fork
            self._file, self._pid = _open_h5(self.path), os.getpid()
            self._dsets = {k: self._file[k] for k in self.keys}
        e, t = int(self.episodes[i // self._starts]), i % self._starts
        arrays = _read_window(self._dsets, e, t, self.length, self.keys)
        cast = {"states": np.float32, "actions": np.int64, "num_objects": np.int64}
        return {k: torch.as_tensor(np.asarray(v, dtype=cast.get(k, v.dtype))) for k, v in arrays.items()}


def __getattr__(name: str) -> Any:
    # WindowDataset subclasses torch.utils.data.Dataset; build it on first use so importing this module
    # does not import torch.
    if name == "WindowDataset":
        from torch.utils.data import Dataset

        cls = type(
            "WindowDataset",
            (_WindowDatasetBase, Dataset),
            {"__module__": __name__, "__doc__": _WindowDatasetBase.__doc__},
        )
        globals()["WindowDataset"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
