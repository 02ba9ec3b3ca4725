"""Frozen dataclass configs, one docstring per field. Every output directory gets its resolved config as YAML."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROBE_METHODS = ("gates", "message_norms", "jacobian", "latent_intervention", "prediction_gain")
"""The learned-edge extraction methods of ``causal_wm.probe``, named here so that the command line can list them
without importing torch."""


@dataclass(frozen=True)
class GenerateConfig:
    """How ``causal-wm generate`` builds a dataset. Together with the package version it fixes every byte."""

    scene: str = "springs"
    """Scene family: springs, charges, billiards or pushing."""
    episodes: int = 1000
    """Number of episodes."""
    steps: int = 50
    """Frames per episode (T); there are T-1 actions."""
    num_objects: str = "3-5"
    """Object count per episode, a number or an inclusive range such as 3-5."""
    image_size: int = 64
    """Frame side in pixels."""
    seed: int = 0
    """Master seed; episode e uses the seed sequence (seed, e), whatever the number of workers."""
    images: bool = True
    """Render `obs` and `masks`; False writes a state-only file."""
    influence_steps: int = 10
    """Frames simulated after the perturbation of each object when measuring `influence`; 0 skips it."""
    influence_impulse: float = 2.0
    """Size of the perturbing impulse (arena momentum units) for `influence`."""
    shard_size: int = 64
    """Episodes per shard (the unit of parallel work); does not change the output."""
    scene_options: dict[str, Any] = field(default_factory=dict)
    """Extra fields of the scene's config (see envs/<scene>.py), e.g. {"random_graph": true}."""

    def scene_config(self) -> dict[str, Any]:
        return {"num_objects": self.num_objects, "image_size": self.image_size, **self.scene_options}


def to_dict(config) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=list))


def stem_path(stem: str | os.PathLike, ext: str, known: tuple[str, ...] = (".json", ".md")) -> Path:
    """The output file ``stem`` + ``ext`` of a script that takes an output stem (``--out results/table`` writes
    ``results/table.json``). Unlike ``Path.with_suffix``, dots inside the stem stay (``springs5_m0.3-3_dec10``); a
    stem that already ends in one of the ``known`` extensions (``--out table.json``) has it replaced."""
    stem = Path(stem)
    name = stem.name[: -len(stem.suffix)] if stem.suffix in known else stem.name
    return stem.with_name(name + ext)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically (temporary file beside it, then rename): never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def _strict(obj):
    """``obj`` with numpy scalars and arrays as Python numbers and lists, and NaN and infinities as None."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _strict(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented, strict JSON atomically: numpy scalars and arrays become numbers and lists, and an
    undefined number (NaN, e.g. the AUROC of a graph without edges) becomes null, which every JSON reader accepts."""
    return write_text(path, json.dumps(_strict(obj), indent=2, allow_nan=False))


def dump_yaml(config, path: str | os.PathLike) -> None:
    """Write ``config`` (a dataclass or a dict) as YAML atomically."""
    path = Path(path)
    values = config if isinstance(config, dict) else to_dict(config)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(json.loads(json.dumps(values, default=list)), sort_keys=False))
    os.replace(tmp, path)
