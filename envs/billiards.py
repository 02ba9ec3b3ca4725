"""Billiard balls that interact only by elastic collisions: the structural graph is empty, and all influence
travels through contacts."""

from __future__ import annotations

from dataclasses import dataclass

from envs.scene import Scene, SceneConfig


@dataclass(frozen=True)
class BilliardsConfig(SceneConfig):
    speed: float = 60.0
    """Scale of the initial speeds; faster than the default so that balls meet within an episode."""


class Billiards(Scene):
    """Elastic billiard balls."""

    name = "billiards"
    Config = BilliardsConfig
