"""Balls joined by springs. Which pairs are joined follows the balls' visible types (colours) through a fixed
type-level graph, so one frame shows which springs exist; ``random_graph=True`` draws an NRI-style graph instead."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.scene import ConfigError, Scene, SceneConfig, World, distinct_types

# Fixed type-level graph over the 6 spring types (undirected): a ring plus one chord, density 7/15.
TYPE_GRAPH = np.zeros((6, 6), dtype=bool)
for _a, _b in ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0), (0, 3)):
    TYPE_GRAPH[_a, _b] = TYPE_GRAPH[_b, _a] = True


@dataclass(frozen=True)
class SpringsConfig(SceneConfig):
    speed: float = 30.0
    """Scale of the initial speeds (springs add kinetic energy of their own)."""
    stiffness: float = 3.0
    """Spring constant of pymunk's DampedSpring."""
    spring_damping: float = 0.0
    """Spring damping (0 keeps the scene lively)."""
    rest_length: float = 20.0
    """Spring rest length in arena units."""
    random_graph: bool = False
    """Draw each pair's spring independently with ``edge_prob`` (NRI-style) instead of from the types."""
    edge_prob: float = 0.5
    """Spring probability per pair when ``random_graph`` is set."""

    def __post_init__(self):
        super().__post_init__()
        if self.stiffness <= 0 or self.rest_length < 0 or not 0 <= self.edge_prob <= 1:
            raise ConfigError("springs need stiffness > 0, rest_length >= 0 and edge_prob in [0, 1]")


class Springs(Scene):
    """Balls joined by springs."""

    name = "springs"
    Config = SpringsConfig

    @property
    def spring_stiffness(self) -> float:
        return self.config.stiffness

    @property
    def spring_damping(self) -> float:
        return self.config.spring_damping

    def sample_types(self, rng: np.random.Generator, n: int) -> np.ndarray:
        # Distinct types while they last, so that colours identify objects in small scenes.
        return distinct_types(rng, n, len(TYPE_GRAPH))

    def sample_springs(self, rng: np.random.Generator, types: np.ndarray) -> np.ndarray:
        n = len(types)
        i, j = np.triu_indices(n, k=1)
        if self.config.random_graph:
            keep = rng.random(len(i)) < self.config.edge_prob
        else:
            keep = TYPE_GRAPH[types[i] % len(TYPE_GRAPH), types[j] % len(TYPE_GRAPH)]
        return np.stack([i[keep], j[keep]], axis=1).astype(np.int64)

    def spring_rest_length(self, rng, pos, springs) -> np.ndarray:
        return np.full(len(springs), self.config.rest_length)

    def structural_adjacency(self, world: World) -> np.ndarray:
        adj = np.zeros((world.capacity, world.capacity), dtype=np.uint8)
        for i, j in world.springs:
            adj[i, j] = adj[j, i] = 1
        return adj
