"""Charged balls with pairwise, softened Coulomb forces. The charge (+, -, 0) is shown by colour; neutral balls
interact only by collision. With ``distinct_colours`` every ball of an episode has its own colour (two shades per
charge), so that colours also tell the balls apart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.scene import PALETTE, ConfigError, Scene, SceneConfig, World, distinct_types

CHARGE_VALUES = np.array([1.0, -1.0, 0.0])
"""Charge of each visible type: 0 -> +, 1 -> -, 2 -> neutral."""
CHARGE_COLOURS = PALETTE[[5, 4, 7]]  # vermillion +, blue -, grey neutral
SHADE_COLOURS = PALETTE[[[5, 3], [4, 1], [7, 2]]]
"""(charge class, shade) -> colour with ``distinct_colours``: + vermillion / yellow, - blue / sky blue, neutral light
grey / bluish green. Type t is charge class t // 2 in shade t % 2."""


@dataclass(frozen=True)
class ChargesConfig(SceneConfig):
    strength: float = 8000.0
    """Coulomb constant: force = strength * q_i * q_j / (r^2 + softening^2), like charges repel."""
    softening: float = 8.0
    """Softening length of the force, arena units."""
    charge_probs: tuple[float, float, float] = (0.4, 0.4, 0.2)
    """Probabilities of +, - and neutral charges."""
    distinct_colours: bool = False
    """Six types, two per charge (types 0, 1: +; 2, 3: -; 4, 5: neutral), drawn without replacement while they last
    (as in springs), each drawn in its own shade of its charge's colour family (`SHADE_COLOURS`): up to six balls
    get distinct colours, which still show the charge. ``charge_probs`` is then unused (each charge has 1/3 of the
    types)."""

    def __post_init__(self):
        super().__post_init__()
        p = np.asarray(self.charge_probs, dtype=float)
        if p.shape != (3,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ConfigError(f"charge_probs must be 3 non-negative numbers summing to 1, got {self.charge_probs}")
        object.__setattr__(self, "charge_probs", tuple(float(v) for v in p))


class Charges(Scene):
    """Charged particles."""

    name = "charges"
    Config = ChargesConfig

    def sample_objects(self, rng: np.random.Generator, n: int) -> dict:
        props = super().sample_objects(rng, n)
        if self.config.distinct_colours:
            props["type"] = distinct_types(rng, n, SHADE_COLOURS.shape[0] * SHADE_COLOURS.shape[1])
            props["charge"] = CHARGE_VALUES[props["type"] // 2]
        else:
            props["type"] = rng.choice(3, size=n, p=self.config.charge_probs)
            props["charge"] = CHARGE_VALUES[props["type"]]
        return props

    def colours(self, types, charges) -> np.ndarray:
        # The colour follows the current charge, so that do(charge) shows; with distinct colours the type picks the
        # shade within the charge's family.
        cls = np.where(np.asarray(charges) > 0, 0, np.where(np.asarray(charges) < 0, 1, 2))
        if self.config.distinct_colours:
            return SHADE_COLOURS[cls, np.asarray(types) % 2]
        return CHARGE_COLOURS[cls]

    def structural_adjacency(self, world: World) -> np.ndarray:
        charged = world.charge != 0
        return (charged[:, None] & charged[None, :]).astype(np.uint8)

    def apply_forces(self, world: World) -> None:
        idx = np.flatnonzero(world.present & (world.charge != 0))
        if len(idx) < 2:
            return
        bodies = [world.bodies[i] for i in idx]
        pos = np.array([tuple(b.position) for b in bodies])  # (M, 2)
        q = world.charge[idx]
        d = pos[:, None, :] - pos[None, :, :]  # (M, M, 2), from j to i
        r2 = (d**2).sum(-1) + self.config.softening**2
        mag = self.config.strength * q[:, None] * q[None, :] / r2**1.5
        np.fill_diagonal(mag, 0.0)
        force = (mag[..., None] * d).sum(1)  # (M, 2) force on i
        for b, f in zip(bodies, force, strict=True):
            b.force = (float(f[0]), float(f[1]))
