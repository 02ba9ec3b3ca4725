"""Circles and boxes of different masses on a floor with friction, pushed by actions (C-SWM's object x direction
plus a no-op). Heavy objects shove light ones. The visible type encodes shape and mass class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.scene import BOX, CIRCLE, Scene, SceneConfig


@dataclass(frozen=True)
class PushingConfig(SceneConfig):
    radius: tuple[float, float] = (5.0, 7.0)
    mass: tuple[float, float] = (1.0, 4.0)
    speed: float = 0.0
    """Objects start at rest; only pushes move them."""
    damping: float = 0.3
    """Floor friction: fraction of velocity kept per second."""
    elasticity: float = 0.3
    friction: float = 0.6
    push_speed: float = 80.0
    action_prob: float = 1.0
    box_prob: float = 0.5
    """Probability that an object is a box rather than a circle."""


class Pushing(Scene):
    """Objects pushed around by actions."""

    name = "pushing"
    Config = PushingConfig

    def sample_objects(self, rng: np.random.Generator, n: int) -> dict:
        props = super().sample_objects(rng, n)
        props["shape"] = np.where(rng.random(n) < self.config.box_prob, BOX, CIRCLE)
        heavy = props["mass"] > np.mean(self.config.mass)
        props["type"] = 2 * props["shape"] + heavy  # 0 light circle, 1 heavy circle, 2 light box, 3 heavy box
        return props
