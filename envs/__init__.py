"""pymunk scenes with ground-truth interaction graphs and interventions.

>>> import envs
>>> scene = envs.make_scene("springs", num_objects=(3, 5))
>>> spec = scene.sample_spec(np.random.default_rng(0))
>>> run = scene.rollout(spec, scene.sample_actions(rng, 50, spec.num_objects), interventions=[envs.do(10, mass={0: 4})])
>>> env = envs.make("springs")  # a gymnasium Env, render_mode="rgb_array"
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from envs.billiards import Billiards
from envs.charges import Charges
from envs.pushing import Pushing
from envs.scene import (
    STATE_FEATURES,
    ConfigError,
    EpisodeSpec,
    Intervention,
    ObjectSpec,
    Rollout,
    Scene,
    SceneConfig,
    World,
    do,
    parse_range,
)
from envs.springs import Springs

SCENES: dict[str, type[Scene]] = {cls.name: cls for cls in (Springs, Charges, Billiards, Pushing)}
GYM_IDS = {name: f"causal_wm/{name.capitalize()}-v0" for name in SCENES}

__all__ = [
    "SCENES",
    "STATE_FEATURES",
    "ConfigError",
    "EpisodeSpec",
    "Intervention",
    "ObjectSpec",
    "Rollout",
    "Scene",
    "SceneConfig",
    "World",
    "do",
    "make",
    "make_scene",
    "parse_range",
]


def make_scene(name: str, **config: Any) -> Scene:
    """The scene ``name`` with config overrides (fields of its ``Config`` dataclass)."""
    if name not in SCENES:
        raise ConfigError(f"unknown scene {name!r}; choose one of {', '.join(SCENES)}")
    cls = SCENES[name]
    fields = set(cls.Config.__dataclass_fields__)
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ConfigError(f"unknown {name} option(s) {unknown}; valid: {', '.join(sorted(fields))}")
    return cls(**config)


def make(name: str, **config: Any) -> gym.Env:
    """A gymnasium ``Env`` for scene ``name`` (``render_mode="rgb_array"``). Env options (``max_steps``,
    ``obs_type``, ``render_mode``) and scene config fields may be mixed in ``config``."""
    from envs.gym_env import CausalSceneEnv

    env_keys = {"max_steps", "obs_type", "render_mode"}
    env_kwargs = {k: v for k, v in config.items() if k in env_keys}
    scene = make_scene(name, **{k: v for k, v in config.items() if k not in env_keys})
    return CausalSceneEnv(scene, **env_kwargs)


for _name, _id in GYM_IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="envs.gym_env:CausalSceneEnv", kwargs={"scene": _name})
