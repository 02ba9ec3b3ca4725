"""Scenes: determinism, ground-truth graphs against each other and against hand-built cases, actions, configs."""

import numpy as np
import pytest

import envs
from envs.scene import BOX, CIRCLE, EpisodeSpec, ObjectSpec


def episode(name, seed=0, steps=30, **cfg):
    scene = envs.make_scene(name, **cfg)
    rng = np.random.default_rng(seed)
    spec = scene.sample_spec(rng)
    return scene, spec, scene.sample_actions(rng, steps, spec.num_objects)


def still(positions, **kw):
    """Objects at rest at ``positions``."""
    return [ObjectSpec(position=p, **kw) for p in positions]


@pytest.mark.parametrize("name", sorted(envs.SCENES))
def test_rollout_shapes_and_determinism(name):
    scene, spec, actions = episode(name, seed=3, num_objects=(3, 5))
    a = scene.rollout(spec, actions)
    b = scene.rollout(*episode(name, seed=3, num_objects=(3, 5))[1:])
    n, t = spec.num_objects, len(actions) + 1
    assert a.states.shape == (t, n, len(envs.STATE_FEATURES)) and a.states.dtype == np.float32
    assert a.contacts.shape == a.adjacency.shape == (t, n, n) and a.wall_contacts.shape == (t, n)
    assert a.frames.shape == (t, 64, 64, 3) and a.masks.shape == (t, 64, 64)
    assert a.states.tobytes() == b.states.tobytes() and a.frames.tobytes() == b.frames.tobytes()
    c = scene.rollout(*episode(name, seed=4, num_objects=(3, 5))[1:])
    assert c.states.shape != a.states.shape or not np.array_equal(c.states, a.states)
    assert np.array_equal(a.contacts, a.contacts.transpose(0, 2, 1))
    assert np.all(a.states[:, :, 0] > 0) and np.all(a.states[:, :, 0] < scene.config.arena_size)


@pytest.mark.parametrize("name", ["springs", "charges", "billiards"])
def test_scenes_stay_lively(name):
    """Objects move a few pixels per frame by default (a calmer scene is never how a target is met)."""
    scene, spec, actions = episode(name, seed=1, num_objects=5, steps=50)
    pos = scene.rollout(spec, actions, render_frames=False).positions
    px_per_frame = np.linalg.norm(np.diff(pos, axis=0), axis=-1).mean() * 64 / scene.config.arena_size
    assert 1.0 < px_per_frame < 8.0


def test_spring_pair_influences_each_other_but_not_a_distant_third():
    scene = envs.make_scene("springs", num_objects=3)
    spec = EpisodeSpec.from_objects(
        still([(30, 50), (55, 50), (90, 90)]), springs=np.array([[0, 1]]), spring_rest=np.array([20.0])
    )
    actions = np.zeros(20, dtype=np.int32)
    run = scene.rollout(spec, actions, render_frames=False)
    expected = np.zeros((3, 3), dtype=np.uint8)
    expected[0, 1] = expected[1, 0] = 1
    assert np.array_equal(run.adjacency[0], expected)
    infl = scene.influence(spec, actions, steps=10)
    assert infl[0, 1] > 1e-3 and infl[1, 0] > 1e-3
    assert infl[0, 2] == infl[2, 0] == infl[1, 2] == infl[2, 1] == 0.0
    assert np.all(np.diag(infl) == 0)
    assert set(run.graph().edges) == {(0, 1), (1, 0)}


def test_type_level_spring_graph_is_visible_from_types():
    from envs.springs import TYPE_GRAPH

    scene = envs.make_scene("springs", num_objects=(3, 12))
    for seed in range(5):
        spec = scene.sample_spec(np.random.default_rng(seed))
        t = spec.type
        expected = TYPE_GRAPH[t[:, None], t[None, :]] & ~np.eye(len(t), dtype=bool)
        adj = np.zeros_like(expected)
        adj[spec.springs[:, 0], spec.springs[:, 1]] = True
        assert np.array_equal(adj | adj.T, expected)


def test_random_spring_graph_density():
    scene = envs.make_scene("springs", num_objects=8, random_graph=True)
    fractions = [len(scene.sample_spec(np.random.default_rng(s)).springs) / 28 for s in range(40)]
    assert 0.4 < np.mean(fractions) < 0.6


def test_charges_graph_is_charged_pairs():
    scene = envs.make_scene("charges", num_objects=3)
    spec = EpisodeSpec.from_objects(
        [
            ObjectSpec((25, 50), charge=1.0, type=0),
            ObjectSpec((50, 50), charge=-1.0, type=1),
            ObjectSpec((75, 50), charge=0.0, type=2),
        ]
    )
    run = scene.rollout(spec, np.zeros(15, dtype=np.int32), render_frames=False)
    assert run.adjacency[0].tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    # Opposite charges attract; the neutral ball stays put until touched.
    assert run.positions[-1, 1, 0] - run.positions[-1, 0, 0] < 25
    assert np.allclose(run.positions[:, 2], [75, 50])
    infl = scene.influence(spec, np.zeros(15, dtype=np.int32), steps=10)
    assert infl[0, 1] > 0 and infl[1, 0] > 0 and infl[0, 2] == 0 and infl[2, 0] == 0


def test_charges_distinct_colours_tell_balls_apart_and_still_show_the_charge():
    from envs.charges import CHARGE_VALUES, SHADE_COLOURS

    scene, spec, actions = episode("charges", seed=2, steps=12, num_objects=6, distinct_colours=True)
    assert sorted(spec.type) == list(range(6))  # six balls, six types drawn without replacement
    assert np.array_equal(spec.charge, CHARGE_VALUES[spec.type // 2])
    run = scene.rollout(spec, actions)
    colours = {tuple(c) for c in run.frames[0].reshape(-1, 3)}
    shades = [tuple(c) for c in SHADE_COLOURS.reshape(-1, 3)]
    assert len(set(shades)) == 6 and set(shades) <= colours  # every ball in its own colour
    charged = spec.charge != 0
    assert np.array_equal(run.adjacency[0], charged[:, None] & charged[None, :] & ~np.eye(6, dtype=bool))
    # do(charge) changes the colour family: a flipped + ball is drawn in the - family's shade of its type.
    plus = int(np.flatnonzero(spec.type == 0)[0])
    flipped = scene.rollout(spec, actions, interventions=[envs.do(0, charge={plus: -1.0})])
    mask = flipped.masks[1] == plus + 1
    assert (flipped.frames[1][mask] == SHADE_COLOURS[1, 0]).all(-1).mean() > 0.5  # edges are antialiased
    assert not (flipped.frames[1] == SHADE_COLOURS[0, 0]).all(-1).any()  # the only type-0 ball is + no more
    assert (run.frames[1] == SHADE_COLOURS[0, 0]).all(-1).any()
    # The default keeps one colour per charge, with the configured charge probabilities.
    _, default, _ = episode("charges", seed=2, num_objects=6)
    assert set(default.type) <= {0, 1, 2}


@pytest.mark.parametrize("name", ["springs", "charges"])
def test_structural_edges_lie_in_influence_support(name):
    for seed in range(6):
        scene, spec, actions = episode(name, seed=seed, num_objects=5, steps=20)
        adj = scene.rollout(spec, actions, render_frames=False).adjacency[0]
        infl = scene.influence(spec, actions, steps=10)
        assert np.all(infl[adj == 1] > 1e-6), (seed, adj, infl)
        factual = scene.rollout(spec, actions, render_frames=False)
        assert np.array_equal(scene.influence(spec, actions, steps=10, factual=factual), infl)


def test_billiards_influence_only_after_contacts():
    checked = 0
    for seed in range(8):
        scene, spec, actions = episode("billiards", seed=seed, num_objects=5, steps=25)
        base, base_contacts = scene.counterfactual(spec, actions, None, steps=20)
        assert scene.rollout(spec, actions, render_frames=False).adjacency.sum() == 0
        for i in range(spec.num_objects):
            pos, contacts = scene.counterfactual(spec, actions, i, steps=20)
            moved = np.linalg.norm(pos - base, axis=-1) > 0  # (k, N)
            touched = np.maximum(contacts, base_contacts).any(axis=2)  # (k, N) object touched something
            for j in range(spec.num_objects):
                if j == i or not moved[:, j].any():
                    continue
                first_move = np.argmax(moved[:, j])
                assert touched[: first_move + 1, j].any(), (seed, i, j)
                checked += 1
    assert checked > 0  # some influence did travel through contacts


def test_push_actions_move_the_named_object():
    scene = envs.make_scene("pushing", num_objects=2)
    spec = EpisodeSpec.from_objects(still([(30, 50), (70, 50)], mass=1.0))
    right_on_1 = 1 + 4 * 1 + 1
    run = scene.rollout(spec, np.array([right_on_1, 0, 0]), render_frames=False)
    assert run.positions[-1, 1, 0] > 70.5 and np.allclose(run.positions[:, 0], [30, 50])
    up_on_0 = 1 + 0
    run = scene.rollout(spec, np.array([up_on_0, 0]), render_frames=False)
    assert run.positions[-1, 0, 1] < 49.5  # y grows downwards
    # Pushing an object that does not exist is a no-op.
    run = scene.rollout(spec, np.array([1 + 4 * 5, 0]), render_frames=False)
    assert np.allclose(run.positions[-1], [[30, 50], [70, 50]])


def test_heavy_objects_shove_light_ones():
    scene = envs.make_scene("pushing", num_objects=2)

    def shove(m_pusher, m_target):  # the pusher arrives at the same speed in both cases
        objects = [ObjectSpec((30, 50), velocity=(60, 0), mass=m_pusher), ObjectSpec((45, 50), mass=m_target)]
        run = scene.rollout(EpisodeSpec.from_objects(objects), np.zeros(15, dtype=np.int32), render_frames=False)
        return run.positions[-1, 1, 0] - 45

    assert shove(4.0, 1.0) > shove(1.0, 4.0) > 0


def test_pushing_has_boxes_and_circles_typed_by_shape_and_mass():
    scene = envs.make_scene("pushing", num_objects=8)
    spec = scene.sample_spec(np.random.default_rng(0))
    assert {CIRCLE, BOX} <= set(spec.shape.tolist())
    assert np.array_equal(spec.type // 2, spec.shape)


def test_actions_sampling():
    scene = envs.make_scene("springs", action_prob=0.5, num_objects=4)
    a = scene.sample_actions(np.random.default_rng(0), 2001, 3)
    assert a.shape == (2000,) and a.min() == 0 and a.max() <= 12
    assert 0.4 < np.mean(a > 0) < 0.6
    assert scene.config.num_actions == 17


@pytest.mark.parametrize(
    "cfg, message",
    [
        (dict(num_objects=0), "positive"),
        (dict(num_objects="5-3"), "larger than max"),
        (dict(num_objects="a-b"), "3-5"),
        (dict(image_size=8), "at least 16"),
        (dict(num_objects=40, radius=10.0), "do not fit"),
        (dict(colour=3), "unknown springs option"),
    ],
)
def test_impossible_configs(cfg, message):
    with pytest.raises(envs.ConfigError, match=message):
        envs.make_scene("springs", **cfg)


def test_unknown_scene():
    with pytest.raises(envs.ConfigError, match="unknown scene 'gas'"):
        envs.make_scene("gas")


def test_twelve_objects_fit():
    scene = envs.make_scene("billiards", num_objects=12)
    run = scene.rollout(scene.sample_spec(np.random.default_rng(0)), np.zeros(5, dtype=np.int32))
    assert run.states.shape[1] == 12 and len(np.unique(run.masks[0])) == 13


def test_masks_agree_with_positions():
    scene, spec, actions = episode("billiards", seed=2, num_objects=4, steps=10)
    run = scene.rollout(spec, actions)
    scale = 64 / scene.config.arena_size
    for t in range(0, 10, 3):
        for i in range(spec.num_objects):
            rows, cols = np.nonzero(run.masks[t] == i + 1)
            assert len(rows) > 0.6 * np.pi * (spec.size[i] * scale) ** 2
            assert abs(cols.mean() + 0.5 - run.positions[t, i, 0] * scale) < 1.0
            assert abs(rows.mean() + 0.5 - run.positions[t, i, 1] * scale) < 1.0
            colour = scene.colours(spec.type, spec.charge)[i]
            assert np.abs(run.frames[t][rows, cols].astype(int) - colour).max(axis=1).min() <= 1


@pytest.mark.parametrize("velocity", [(230.0, 0.0), (-230.0, 0.0), (0.0, 230.0), (0.0, -230.0)])
def test_fast_balls_bounce_off_every_wall_instead_of_tunnelling(velocity):
    """At 230 units/s a ball crosses 11.5 units per substep: with thin walls pymunk pushed it out through the wall
    (43 of 1,000 billiards episodes lost a ball that way); the thick walls send it back."""
    scene = envs.make_scene("billiards")
    start = np.array([50.0, 50.0]) + 0.42 * np.array(velocity) / 230.0 * 100  # 8 units from the wall
    spec = EpisodeSpec.from_objects([ObjectSpec(position=tuple(start), velocity=velocity)])
    run = scene.rollout(spec, np.zeros(30, dtype=np.int64), render_frames=False)
    x = run.states[:, 0, :2]
    assert (x > -6).all() and (x < 106).all()  # never wholly outside the arena
    bounced = run.states[:, 0, 2:4] @ np.array(velocity) < 0
    assert bounced.any()  # it came back off the wall
    first = int(np.argmax(bounced))  # the first frame after the bounce: the wall was touched on the way to it
    assert run.wall_contacts[first, 0] == 1 and not run.wall_contacts[:first].any() and not run.contacts.any()
