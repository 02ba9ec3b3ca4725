"""The Scene base: a pymunk world with known interaction structure, actions and interventions.

Conventions
-----------
* The arena is the square ``[0, arena_size]^2`` with elastic walls. ``y`` grows downwards, like image rows, so
  ``render`` maps ``(x, y)`` to ``(column, row)``. Velocities are in arena units per second; one frame lasts ``dt``.
* An episode is fully described by an :class:`EpisodeSpec` (initial conditions, springs, gravity) and an action
  sequence. Every run (plain, intervened, or a counterfactual branch) rebuilds the pymunk space from the spec and
  replays from t=0: pymunk caches contact impulses, so editing a running space does not reproduce a run.
* Actions (every scene): ``0`` is a no-op, ``1 + 4 * i + d`` pushes object ``i`` with an impulse in direction ``d``
  (0 up, 1 right, 2 down, 3 left), as in C-SWM. Pushing an absent object is a no-op.
* Ground truth: ``adjacency[i, j] = 1`` means object ``i`` acts on object ``j`` through a persistent mechanism
  (a spring, a Coulomb force); ``contacts`` are per-frame touching pairs from pymunk arbiters; ``influence`` is a
  counterfactual measure (perturb ``i`` on a replayed branch, measure how far every ``j`` moves away).
* Interventions (:class:`Intervention`, built with :func:`do`) act at a chosen step ``t``: the world is edited
  before frame ``t`` is recorded, so ``states[t]`` already shows the change (``t = 0`` edits initial conditions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pymunk
import pymunk.batch as pmb

from envs.render import render

STATE_FEATURES = ("x", "y", "vx", "vy", "angle", "mass", "size", "type")
"""Per-object state features, in order. ``type`` is the visible type (colour index)."""

CIRCLE, BOX = 0, 1
_BODY_FIELDS = pmb.BodyFields.BODY_ID | pmb.BodyFields.POSITION | pmb.BodyFields.ANGLE | pmb.BodyFields.VELOCITY
_ARBITER_FIELDS = pmb.ArbiterFields.BODY_A_ID | pmb.ArbiterFields.BODY_B_ID | pmb.ArbiterFields.CONTACT_COUNT
WALL_DEPTH = 100.0  # radius of the wall segments (arena units): how far a ball may cross a wall in one substep
DIRECTIONS = np.array([(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)])  # up, right, down, left (y down)

# Okabe-Ito, colour-blind safe, on a black background; type k gets PALETTE[k % len(PALETTE)].
PALETTE = np.array(
    [
        (230, 159, 0),  # orange
        (86, 180, 233),  # sky blue
        (0, 158, 115),  # bluish green
        (240, 228, 66),  # yellow
        (0, 114, 178),  # blue
        (213, 94, 0),  # vermillion
        (204, 121, 167),  # reddish purple
        (200, 200, 200),  # light grey
    ],
    dtype=np.uint8,
)


def distinct_types(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """(n,) types in 0..k-1, distinct while they last: blocks of random permutations of the k types, cut to n."""
    return np.concatenate([rng.permutation(k) for _ in range(-(-n // k))])[:n]


class ConfigError(ValueError):
    """An impossible scene or generation config."""


def parse_range(value: int | str | Sequence[int]) -> tuple[int, int]:
    """Parse an object-count range: ``5``, ``"5"``, ``"3-5"`` or ``(3, 5)`` -> ``(min, max)``."""
    if isinstance(value, str):
        parts = value.split("-")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"object count must look like '5' or '3-5', got {value!r}") from None
        if len(nums) not in (1, 2):
            raise ConfigError(f"object count must look like '5' or '3-5', got {value!r}")
        lo, hi = nums[0], nums[-1]
    elif isinstance(value, int | np.integer):
        lo = hi = int(value)
    else:
        lo, hi = (int(v) for v in value)
    if lo <= 0:
        raise ConfigError(f"object count must be positive, got {lo}")
    if lo > hi:
        raise ConfigError(f"object count range min {lo} is larger than max {hi}")
    return lo, hi


@dataclass(frozen=True)
class SceneConfig:
    """Settings shared by every scene. Lengths are in arena units, times in seconds."""

    num_objects: tuple[int, int] = (3, 5)
    """Range (inclusive) of the object count per episode."""
    radius: tuple[float, float] = (6.0, 6.0)
    """Range of object sizes: radius for circles, half side for boxes."""
    mass: tuple[float, float] = (1.0, 1.0)
    """Range of object masses."""
    speed: float = 40.0
    """Scale of the initial speeds (the mean of a Rayleigh distribution per object)."""
    arena_size: float = 100.0
    """Side of the square arena."""
    image_size: int = 64
    """Rendered frame side in pixels."""
    dt: float = 0.1
    """Seconds per frame."""
    substeps: int = 2
    """pymunk steps per frame."""
    gravity: tuple[float, float] = (0.0, 0.0)
    """Initial gravity vector (y down)."""
    damping: float = 1.0
    """pymunk space damping: fraction of velocity kept per second (1.0 = none)."""
    elasticity: float = 1.0
    """Elasticity of objects and walls."""
    friction: float = 0.0
    """Friction coefficient of objects and walls."""
    push_speed: float = 25.0
    """Speed change (arena units/s) a push gives an object of unit mass (impulse = push_speed)."""
    action_prob: float = 0.2
    """Probability that a sampled action is a push (else a no-op)."""
    draw_springs: bool = False
    """Draw springs in rendered frames."""

    def __post_init__(self):
        object.__setattr__(self, "num_objects", parse_range(self.num_objects))
        for name in ("radius", "mass"):
            value = getattr(self, name)
            lo, hi = (float(value), float(value)) if np.isscalar(value) else (float(v) for v in value)
            if not 0 < lo <= hi:
                raise ConfigError(f"{name} range must satisfy 0 < min <= max, got ({lo}, {hi})")
            object.__setattr__(self, name, (lo, hi))
        object.__setattr__(self, "gravity", tuple(float(g) for g in self.gravity))
        if self.image_size < 16:
            raise ConfigError(f"image size must be at least 16 pixels, got {self.image_size}")
        if self.dt <= 0 or self.substeps < 1:
            raise ConfigError(f"dt must be > 0 and substeps >= 1, got dt={self.dt}, substeps={self.substeps}")
        if not 0.0 <= self.action_prob <= 1.0:
            raise ConfigError(f"action_prob must lie in [0, 1], got {self.action_prob}")
        # Objects are placed without overlap; demand a generous margin so that rejection sampling stays fast.
        free = (self.arena_size - 2 * self.radius[1]) ** 2
        needed = self.num_objects[1] * (2.6 * self.radius[1]) ** 2
        if free <= 0 or needed > 0.6 * free:
            raise ConfigError(
                f"{self.num_objects[1]} objects of size {self.radius[1]:g} do not fit a {self.arena_size:g} arena;"
                " use fewer or smaller objects"
            )

    @property
    def max_objects(self) -> int:
        return self.num_objects[1]

    @property
    def num_actions(self) -> int:
        return 1 + 4 * self.max_objects

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class ObjectSpec:
    """One object's properties and initial conditions (used to add objects by intervention)."""

    position: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    size: float = 6.0
    mass: float = 1.0
    type: int = 0
    shape: int = CIRCLE
    charge: float = 0.0
    angle: float = 0.0


@dataclass(frozen=True)
class EpisodeSpec:
    """Initial conditions of one episode, as arrays over its ``N`` objects."""

    position: np.ndarray  # (N, 2)
    velocity: np.ndarray  # (N, 2)
    size: np.ndarray  # (N,)
    mass: np.ndarray  # (N,)
    type: np.ndarray  # (N,) int
    shape: np.ndarray  # (N,) int, CIRCLE or BOX
    charge: np.ndarray  # (N,)
    angle: np.ndarray  # (N,)
    springs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))  # (S, 2) pairs i < j
    spring_rest: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (S,)
    gravity: tuple[float, float] = (0.0, 0.0)

    @property
    def num_objects(self) -> int:
        return len(self.mass)

    def objects(self) -> list[ObjectSpec]:
        return [
            ObjectSpec(
                position=tuple(self.position[i]),
                velocity=tuple(self.velocity[i]),
                size=float(self.size[i]),
                mass=float(self.mass[i]),
                type=int(self.type[i]),
                shape=int(self.shape[i]),
                charge=float(self.charge[i]),
                angle=float(self.angle[i]),
            )
            for i in range(self.num_objects)
        ]

    @classmethod
    def from_objects(cls, objects: Sequence[ObjectSpec], **kwargs) -> EpisodeSpec:
        arr = lambda name, dtype=np.float64: np.array([getattr(o, name) for o in objects], dtype=dtype)  # noqa: E731
        return cls(
            position=arr("position").reshape(-1, 2),
            velocity=arr("velocity").reshape(-1, 2),
            size=arr("size"),
            mass=arr("mass"),
            type=arr("type", np.int64),
            shape=arr("shape", np.int64),
            charge=arr("charge"),
            angle=arr("angle"),
            **kwargs,
        )


def _pairs(value) -> tuple[tuple[int, int], ...]:
    return tuple((int(i), int(j)) for i, j in value)


@dataclass(frozen=True)
class Intervention:
    """A do() applied at frame ``step`` of a run replayed from t=0. Build it with :func:`do`."""

    step: int = 0
    mass: Mapping[int, float] = field(default_factory=dict)
    velocity: Mapping[int, tuple[float, float]] = field(default_factory=dict)
    position: Mapping[int, tuple[float, float]] = field(default_factory=dict)
    charge: Mapping[int, float] = field(default_factory=dict)
    remove: tuple[int, ...] = ()
    add: tuple[ObjectSpec, ...] = ()
    cut_spring: tuple[tuple[int, int], ...] = ()
    add_spring: tuple[tuple[int, int], ...] = ()
    gravity: tuple[float, float] | None = None

    def objects_named(self) -> set[int]:
        """Indices of existing objects this intervention refers to."""
        named = set(self.mass) | set(self.velocity) | set(self.position) | set(self.charge) | set(self.remove)
        for i, j in (*self.cut_spring, *self.add_spring):
            named |= {i, j}
        return named


def do(
    step: int = 0,
    *,
    mass: Mapping[int, float] | None = None,
    velocity: Mapping[int, Sequence[float]] | None = None,
    position: Mapping[int, Sequence[float]] | None = None,
    charge: Mapping[int, float] | None = None,
    remove: Sequence[int] = (),
    add: Sequence[ObjectSpec] = (),
    cut_spring: Sequence[Sequence[int]] = (),
    add_spring: Sequence[Sequence[int]] = (),
    gravity: Sequence[float] | None = None,
) -> Intervention:
    """Build an intervention applied at frame ``step``.

    Example::

        scene.rollout(spec, actions, interventions=[do(10, mass={0: 4.0}), do(20, cut_spring=[(0, 1)])])

    ``add`` appends objects after the existing ones (indices ``N, N+1, ...``), absent before ``step``. Added
    springs get the current distance between their ends as rest length.
    """
    if step < 0:
        raise ValueError(f"intervention step must be >= 0, got {step}")
    return Intervention(
        step=int(step),
        mass={int(k): float(v) for k, v in (mass or {}).items()},
        velocity={int(k): (float(v[0]), float(v[1])) for k, v in (velocity or {}).items()},
        position={int(k): (float(v[0]), float(v[1])) for k, v in (position or {}).items()},
        charge={int(k): float(v) for k, v in (charge or {}).items()},
        remove=tuple(int(i) for i in remove),
        add=tuple(add),
        cut_spring=_pairs(cut_spring),
        add_spring=_pairs(add_spring),
        gravity=None if gravity is None else (float(gravity[0]), float(gravity[1])),
    )


@dataclass
class Rollout:
    """A simulated (possibly intervened) episode. ``N`` counts objects added by interventions too."""

    states: np.ndarray  # (T, N, F) float32, zeros where absent
    present: np.ndarray  # (T, N) bool
    contacts: np.ndarray  # (T, N, N) uint8, symmetric; contacts[t] covers the physics steps from t-1 to t
    adjacency: np.ndarray  # (T, N, N) uint8, the structural graph in force at frame t
    actions: np.ndarray  # (T-1,) int
    springs: np.ndarray  # (S, 2) every spring that existed at some frame
    spring_present: np.ndarray  # (T, S) bool
    frames: np.ndarray | None = None  # (T, H, W, 3) uint8
    masks: np.ndarray | None = None  # (T, H, W) uint8
    exact_positions: np.ndarray | None = None  # (T, N, 2) float64, as pymunk holds them
    interventions: tuple[Intervention, ...] = ()
    wall_contacts: np.ndarray | None = None  # (T, N) uint8, object touching a wall in the physics steps from t-1 to t

    @property
    def positions(self) -> np.ndarray:
        return self.states[..., :2]

    def graph(self, t: int = -1):
        """The structural graph in force at frame ``t`` as a networkx DiGraph over present objects."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(int(i) for i in np.flatnonzero(self.present[t]))
        g.add_edges_from((int(i), int(j)) for i, j in zip(*np.nonzero(self.adjacency[t]), strict=True))
        return g


class World:
    """A live pymunk space built from an :class:`EpisodeSpec`. Used by rollouts and the gymnasium env."""

    def __init__(self, scene: Scene, spec: EpisodeSpec, capacity: int | None = None):
        cfg = scene.config
        self.scene = scene
        self.cfg = cfg
        self.capacity = capacity or spec.num_objects
        n = self.capacity
        self.space = pymunk.Space()
        self.space.gravity = spec.gravity
        self.space.damping = cfg.damping
        self.gravity = tuple(spec.gravity)
        self.bodies: list[pymunk.Body | None] = [None] * n
        self.shapes: list[pymunk.Shape | None] = [None] * n
        self.size = np.zeros(n)
        self.mass = np.zeros(n)
        self.type = np.zeros(n, dtype=np.int64)
        self.shape_kind = np.zeros(n, dtype=np.int64)
        self.charge = np.zeros(n)
        self.present = np.zeros(n, dtype=bool)
        self.springs: dict[tuple[int, int], pymunk.DampedSpring] = {}
        self.contacts = np.zeros((n, n), dtype=np.uint8)
        self.wall_contacts = np.zeros(n, dtype=np.uint8)
        self.num_added = spec.num_objects
        self._slot: dict[int, int] = {}  # pymunk body id -> object index
        self._buffer = pmb.Buffer()
        self._order_key: bytes = b""
        self._order: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        # Each wall is a thick segment outside the arena whose inner face lies 1 unit inside the edge (where a thin
        # wall of radius 1 on the edge had it). pymunk resolves an overlap towards the nearer side of a shape, so a
        # thin wall let a ball that crossed its centre line within one substep (about 150 units/s here) leave the
        # arena; a thick one pushes it back in unless it crosses WALL_DEPTH units in one substep.
        a, r = cfg.arena_size, WALL_DEPTH
        for p, q in (
            ((-r, 1 - r), (a + r, 1 - r)),
            ((a - 1 + r, -r), (a - 1 + r, a + r)),
            ((-r, a - 1 + r), (a + r, a - 1 + r)),
            ((1 - r, -r), (1 - r, a + r)),
        ):
            wall = pymunk.Segment(self.space.static_body, p, q, r)
            wall.elasticity, wall.friction = cfg.elasticity, cfg.friction
            self.space.add(wall)
        for i, obj in enumerate(spec.objects()):
            self._add_object(i, obj)
        for (i, j), rest in zip(spec.springs, spec.spring_rest, strict=True):
            self._add_spring(int(i), int(j), float(rest))

    # -- construction ------------------------------------------------------------------------------------------
    def _add_object(self, i: int, obj: ObjectSpec) -> None:
        cfg = self.cfg
        if obj.shape == BOX:
            side = 2 * obj.size
            body = pymunk.Body(obj.mass, pymunk.moment_for_box(obj.mass, (side, side)))
            shape = pymunk.Poly.create_box(body, (side, side))
        else:
            body = pymunk.Body(obj.mass, pymunk.moment_for_circle(obj.mass, 0, obj.size))
            shape = pymunk.Circle(body, obj.size)
        body.position, body.velocity, body.angle = obj.position, obj.velocity, obj.angle
        shape.elasticity, shape.friction = cfg.elasticity, cfg.friction
        self.space.add(body, shape)
        self.bodies[i], self.shapes[i] = body, shape
        self._slot[body.id] = i
        self.size[i], self.mass[i], self.type[i] = obj.size, obj.mass, obj.type
        self.shape_kind[i], self.charge[i] = obj.shape, obj.charge
        self.present[i] = True

    def _add_spring(self, i: int, j: int, rest: float | None = None) -> None:
        i, j = min(i, j), max(i, j)
        if (i, j) in self.springs:
            return
        a, b = self.bodies[i], self.bodies[j]
        if rest is None:
            rest = float(np.hypot(*(a.position - b.position)))
        spring = pymunk.DampedSpring(a, b, (0, 0), (0, 0), rest, self.scene.spring_stiffness, self.scene.spring_damping)
        self.space.add(spring)
        self.springs[(i, j)] = spring

    def _record_contacts(self) -> None:
        """Mark pairs of objects touching after the last pymunk step (cached arbiters have no contacts), and objects
        touching a wall (an arbiter with the static body)."""
        buf = self._buffer
        buf.clear()
        pmb.get_space_arbiters(self.space, _ARBITER_FIELDS, buf)
        arbiters = np.frombuffer(buf.int_buf(), dtype=np.uintp).reshape(-1, 3)  # (A, [id_a, id_b, count])
        for id_a, id_b, count in arbiters.tolist():
            i, j = self._slot.get(id_a, -1), self._slot.get(id_b, -1)
            if count and i >= 0 and j >= 0:
                self.contacts[i, j] = self.contacts[j, i] = 1
            elif count and max(i, j) >= 0:
                self.wall_contacts[max(i, j)] = 1

    def _read_bodies(self) -> tuple[np.ndarray, np.ndarray]:
        """Object indices (M,) and [x, y, angle, vx, vy] (M, 5) of the objects' bodies, in one batch call."""
        buf = self._buffer
        buf.clear()
        pmb.get_space_bodies(self.space, _BODY_FIELDS, buf)
        ids = bytes(buf.int_buf())
        if ids != self._order_key:  # bodies were added or removed: map buffer rows to object indices again
            slots = np.array([self._slot.get(i, -1) for i in np.frombuffer(ids, dtype=np.uintp).tolist()])
            keep = slots >= 0  # the space may list its static body (the walls) too
            self._order_key, self._order = ids, (slots[keep], np.flatnonzero(keep))
        slots, rows = self._order
        return slots, np.frombuffer(buf.float_buf(), dtype=np.float64).reshape(-1, 5)[rows]

    # -- dynamics ------------------------------------------------------------------------------------------------
    def step(self, action: int, record_contacts: bool = True) -> None:
        """Apply ``action`` (an impulse) and advance one frame; ``self.contacts`` then holds this frame's contacts
        and ``self.wall_contacts`` its objects that touched a wall (unless ``record_contacts`` is False)."""
        self.contacts[:] = 0
        self.wall_contacts[:] = 0
        action = int(action)
        if action > 0:
            i, d = divmod(action - 1, 4)
            if i < self.capacity and self.present[i]:
                body = self.bodies[i]
                body.apply_impulse_at_world_point(tuple(DIRECTIONS[d] * self.cfg.push_speed), body.position)
        h = self.cfg.dt / self.cfg.substeps
        for _ in range(self.cfg.substeps):
            self.scene.apply_forces(self)
            self.space.step(h)
            if record_contacts:
                self._record_contacts()

    def positions(self) -> np.ndarray:
        """(capacity, 2) float64 positions; zeros for absent slots."""
        slots, values = self._read_bodies()
        pos = np.zeros((self.capacity, 2))
        pos[slots] = values[:, :2]
        return pos

    def state(self) -> np.ndarray:
        """(capacity, F) float32 in the order of STATE_FEATURES; zeros for absent slots."""
        raw = np.zeros((self.capacity, 5))
        slots, values = self._read_bodies()
        raw[slots] = values
        return self.assemble_states(raw, self.present, self.mass)

    def assemble_states(self, raw: np.ndarray, present: np.ndarray, mass: np.ndarray) -> np.ndarray:
        """States (..., capacity, F) float32 from raw body values (..., capacity, [x, y, angle, vx, vy]), the
        presence mask (..., capacity) and masses (..., capacity); zeros where absent."""
        out = np.empty((*raw.shape[:-1], len(STATE_FEATURES)), dtype=np.float32)
        out[..., 0:2] = raw[..., 0:2]
        out[..., 2:4] = raw[..., 3:5]
        out[..., 4] = raw[..., 2]
        out[..., 5] = mass
        out[..., 6] = self.size
        out[..., 7] = self.type
        out[~present] = 0.0
        return out

    def adjacency(self) -> np.ndarray:
        """(capacity, capacity) uint8 structural graph among present objects."""
        adj = self.scene.structural_adjacency(self)
        adj[~self.present] = 0
        adj[:, ~self.present] = 0
        np.fill_diagonal(adj, 0)
        return adj

    # -- interventions -------------------------------------------------------------------------------------------
    def apply(self, iv: Intervention) -> None:
        missing = sorted(i for i in iv.objects_named() if not (0 <= i < self.capacity and self.present[i]))
        if missing:
            raise ValueError(f"intervention at step {iv.step} names absent object(s) {missing}")
        for i, m in iv.mass.items():
            if m <= 0:
                raise ValueError(f"do(mass) needs a positive mass, got {m} for object {i}")
            body = self.bodies[i]
            body.mass = self.mass[i] = m
            kind, size = self.shape_kind[i], self.size[i]
            body.moment = (
                pymunk.moment_for_box(m, (2 * size, 2 * size))
                if kind == BOX
                else (pymunk.moment_for_circle(m, 0, size))
            )
        for i, v in iv.velocity.items():
            self.bodies[i].velocity = v
        for i, p in iv.position.items():
            self.bodies[i].position = p
            self.space.reindex_shapes_for_body(self.bodies[i])
        for i, q in iv.charge.items():
            self.charge[i] = q
        for i, j in iv.cut_spring:
            key = (min(i, j), max(i, j))
            if key not in self.springs:
                raise ValueError(f"do(cut_spring) at step {iv.step}: there is no spring between {i} and {j}")
            self.space.remove(self.springs.pop(key))
        for i, j in iv.add_spring:
            if i == j:
                raise ValueError(f"do(add_spring) needs two different objects, got ({i}, {j})")
            self._add_spring(i, j)
        for i in iv.remove:
            for key in [k for k in self.springs if i in k]:
                self.space.remove(self.springs.pop(key))
            self.space.remove(self.bodies[i], self.shapes[i])
            del self._slot[self.bodies[i].id]
            self.bodies[i] = self.shapes[i] = None
            self.present[i] = False
        for obj in iv.add:
            if self.num_added >= self.capacity:
                raise ValueError("do(add): no free object slot (the rollout pre-allocates one per added object)")
            self._add_object(self.num_added, obj)
            self.num_added += 1
        if iv.gravity is not None:
            self.space.gravity = self.gravity = iv.gravity


class Scene:
    """Base class of the scene families. Subclasses set ``name``, ``Config`` and override the hooks."""

    name = "scene"
    Config = SceneConfig
    spring_stiffness = 0.0
    spring_damping = 0.0

    def __init__(self, config: SceneConfig | None = None, **overrides):
        if config is None:
            config = self.Config(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        if not isinstance(config, self.Config):
            raise ConfigError(f"{self.name} needs a {self.Config.__name__}, got {type(config).__name__}")
        self.config = config

    # -- hooks ---------------------------------------------------------------------------------------------------
    def sample_objects(self, rng: np.random.Generator, n: int) -> dict:
        """Per-object properties (size, mass, type, shape, charge) for ``n`` objects."""
        cfg = self.config
        return {
            "size": rng.uniform(*cfg.radius, n),
            "mass": rng.uniform(*cfg.mass, n),
            "type": self.sample_types(rng, n),
            "shape": np.full(n, CIRCLE),
            "charge": np.zeros(n),
        }

    def sample_types(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.permutation(n) % len(PALETTE)

    def sample_springs(self, rng: np.random.Generator, types: np.ndarray) -> np.ndarray:
        """(S, 2) spring pairs i < j."""
        return np.zeros((0, 2), dtype=np.int64)

    def structural_adjacency(self, world: World) -> np.ndarray:
        """(capacity, capacity) uint8: which persistent mechanisms exist right now (before masking)."""
        return np.zeros((world.capacity, world.capacity), dtype=np.uint8)

    def apply_forces(self, world: World) -> None:
        """Called before every pymunk step (e.g. pairwise Coulomb forces)."""

    def colours(self, types: np.ndarray, charges: np.ndarray) -> np.ndarray:
        return PALETTE[np.asarray(types) % len(PALETTE)]

    # -- sampling ------------------------------------------------------------------------------------------------
    def sample_spec(self, rng: np.random.Generator, num_objects: int | None = None) -> EpisodeSpec:
        """Draw an episode's initial conditions; ``num_objects`` overrides the configured range."""
        cfg = self.config
        lo, hi = cfg.num_objects
        n = int(rng.integers(lo, hi + 1)) if num_objects is None else int(num_objects)
        props = self.sample_objects(rng, n)
        size = props["size"]
        extent = np.where(props["shape"] == BOX, size * np.sqrt(2), size)
        pos = self._place(rng, extent)
        angle = rng.uniform(0, 2 * np.pi, n) * (props["shape"] == BOX)
        heading = rng.uniform(0, 2 * np.pi, n)
        speed = rng.rayleigh(cfg.speed / np.sqrt(np.pi / 2), n)
        vel = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        springs = self.sample_springs(rng, props["type"])
        rest = self.spring_rest_length(rng, pos, springs)
        return EpisodeSpec(
            position=pos, velocity=vel, angle=angle, springs=springs, spring_rest=rest, gravity=cfg.gravity, **props
        )

    def spring_rest_length(self, rng: np.random.Generator, pos: np.ndarray, springs: np.ndarray) -> np.ndarray:
        return np.zeros(len(springs))

    def _place(self, rng: np.random.Generator, extent: np.ndarray) -> np.ndarray:
        """Non-overlapping positions inside the walls, by rejection sampling."""
        a = self.config.arena_size
        pos = np.zeros((len(extent), 2))
        for i, r in enumerate(extent):
            for _ in range(10_000):
                p = rng.uniform(r + 1.0, a - r - 1.0, 2)
                if i == 0 or np.all(np.hypot(*(pos[:i] - p).T) > extent[:i] + r + 1.0):
                    pos[i] = p
                    break
            else:
                raise ConfigError(f"could not place {len(extent)} objects without overlap in a {a:g} arena")
        return pos

    def sample_actions(self, rng: np.random.Generator, steps: int, num_objects: int) -> np.ndarray:
        """(steps - 1,) int actions: pushes with probability ``action_prob``, else no-ops."""
        push = rng.random(steps - 1) < self.config.action_prob
        which = rng.integers(0, 4 * num_objects, steps - 1)
        return np.where(push, 1 + which, 0).astype(np.int32)

    # -- simulation ----------------------------------------------------------------------------------------------
    def world(self, spec: EpisodeSpec, capacity: int | None = None) -> World:
        return World(self, spec, capacity)

    def rollout(
        self,
        spec: EpisodeSpec,
        actions: np.ndarray,
        *,
        interventions: Sequence[Intervention] = (),
        render_frames: bool = True,
    ) -> Rollout:
        """Simulate ``len(actions) + 1`` frames from t=0, applying ``interventions`` at their steps."""
        actions = np.asarray(actions, dtype=np.int64)
        steps = len(actions) + 1
        by_step: dict[int, list[Intervention]] = {}
        for iv in interventions:
            if iv.step >= steps:
                raise ValueError(f"intervention step {iv.step} is past the last frame ({steps - 1})")
            by_step.setdefault(iv.step, []).append(iv)
        capacity = spec.num_objects + sum(len(iv.add) for iv in interventions)
        world = self.world(spec, capacity)
        n = capacity
        raw = np.zeros((steps, n, 5))  # x, y, angle, vx, vy
        mass = np.zeros((steps, n))
        present = np.zeros((steps, n), dtype=bool)
        contacts = np.zeros((steps, n, n), dtype=np.uint8)
        wall_contacts = np.zeros((steps, n), dtype=np.uint8)
        adjacency = np.zeros((steps, n, n), dtype=np.uint8)
        spring_sets: list[tuple] = []
        adj = world.adjacency()
        for t in range(steps):
            if t > 0:
                world.step(actions[t - 1])
                contacts[t] = world.contacts
                wall_contacts[t] = world.wall_contacts
            if t in by_step:
                for iv in by_step[t]:
                    world.apply(iv)
                adj = world.adjacency()
            slots, values = world._read_bodies()
            raw[t, slots] = values
            mass[t] = world.mass
            present[t] = world.present
            adjacency[t] = adj
            spring_sets.append(tuple(world.springs))
        all_springs = sorted(set().union(*spring_sets)) if spring_sets else []
        springs = np.array(all_springs, dtype=np.int64).reshape(-1, 2)
        column = {pair: k for k, pair in enumerate(all_springs)}
        spring_present = np.zeros((steps, len(all_springs)), dtype=bool)
        for t, pairs in enumerate(spring_sets):
            spring_present[t, [column[p] for p in pairs]] = True
        states = world.assemble_states(raw, present, mass)
        out = Rollout(
            states,
            present,
            contacts,
            adjacency,
            actions,
            springs,
            spring_present,
            exact_positions=raw[..., :2],
            interventions=tuple(interventions),
            wall_contacts=wall_contacts,
        )
        if render_frames:
            out.frames, out.masks = self.render(out, world)
        return out

    def render(self, rollout: Rollout, world: World) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        draw = cfg.draw_springs and len(rollout.springs) > 0
        return render(
            rollout.positions,
            world.size,
            self.colours(world.type, world.charge),
            arena_size=cfg.arena_size,
            image_size=cfg.image_size,
            shapes=world.shape_kind,
            angles=rollout.states[..., 4],
            present=rollout.present,
            springs=rollout.springs if draw else None,
            spring_present=rollout.spring_present if draw else None,
        )

    def counterfactual(
        self,
        spec: EpisodeSpec,
        actions: np.ndarray,
        obj: int | None,
        *,
        steps: int = 10,
        start: int = 0,
        impulse: float = 2.0,
        record_contacts: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Replay from t=0, kick object ``obj`` (None: no kick) with an impulse of ``impulse`` along +x at frame
        ``start``, and simulate ``steps`` frames. Returns positions (k, N, 2) and contacts (k, N, N) of frames
        ``start+1 .. start+k`` (k may be shorter at the end of the episode; contacts are zeros unless
        ``record_contacts``). Physics only, nothing rendered."""
        actions = np.asarray(actions)
        end = min(start + steps, len(actions))
        world = self.world(spec)
        pos, contacts = [], []
        for t in range(end):
            if t == start and obj is not None:
                body = world.bodies[obj]
                body.apply_impulse_at_world_point((impulse, 0.0), body.position)
            world.step(actions[t], record_contacts)
            if t >= start:
                pos.append(world.positions())
                contacts.append(world.contacts.copy())
        n = spec.num_objects
        return np.array(pos).reshape(-1, n, 2), np.array(contacts, dtype=np.uint8).reshape(-1, n, n)

    def influence(
        self,
        spec: EpisodeSpec,
        actions: np.ndarray,
        *,
        steps: int = 10,
        start: int = 0,
        impulse: float = 2.0,
        factual: Rollout | None = None,
    ) -> np.ndarray:
        """(N, N) float32 counterfactual influence: entry [i, j] is the largest distance between object ``j``'s
        positions on the factual run and on a branch where ``i`` got an extra impulse (see
        :meth:`counterfactual`) at frame ``start``, over the ``steps`` frames that follow. The diagonal is zero.
        Passing the plain ``rollout(spec, actions)`` as ``factual`` saves re-simulating the factual run."""
        n = spec.num_objects
        kw = dict(steps=steps, start=start, impulse=impulse)
        if factual is not None:
            if factual.interventions or not np.array_equal(factual.actions, actions):
                raise ValueError("influence: `factual` must be the plain rollout of the same spec and actions")
            base = factual.exact_positions[start + 1 : min(start + steps, len(actions)) + 1]
        else:
            base, _ = self.counterfactual(spec, actions, None, **kw)  # (k, N, 2)
        out = np.zeros((n, n), dtype=np.float32)
        if len(base):
            for i in range(n):
                branch, _ = self.counterfactual(spec, actions, i, record_contacts=False, **kw)
                out[i] = np.linalg.norm(branch - base, axis=-1).max(0)
        np.fill_diagonal(out, 0.0)
        return out
