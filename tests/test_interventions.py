"""Interventions: replayed from t=0, applied at their step, deterministic, with updated ground truth."""

import numpy as np
import pytest

import envs
from envs import ObjectSpec, do
from envs.scene import EpisodeSpec


@pytest.fixture
def springs():
    scene = envs.make_scene("springs", num_objects=4)
    spec = scene.sample_spec(np.random.default_rng(5))
    actions = scene.sample_actions(np.random.default_rng(6), 30, spec.num_objects)
    assert len(spec.springs) >= 2
    return scene, spec, actions, scene.rollout(spec, actions)


def test_do_mass_changes_only_the_future(springs):
    scene, spec, actions, base = springs
    i = int(spec.springs[0, 0])
    run = scene.rollout(spec, actions, interventions=[do(10, mass={i: 5.0})])
    assert np.array_equal(run.states[:10], base.states[:10])
    assert run.states[10, i, 5] == 5.0 and np.array_equal(run.states[10, :, :2], base.states[10, :, :2])
    assert not np.allclose(run.states[20:, :, :2], base.states[20:, :, :2])
    again = scene.rollout(spec, actions, interventions=[do(10, mass={i: 5.0})])
    assert again.states.tobytes() == run.states.tobytes() and again.frames.tobytes() == run.frames.tobytes()


def test_do_position_and_velocity_show_at_their_step(springs):
    scene, spec, actions, base = springs
    run = scene.rollout(spec, actions, interventions=[do(5, position={0: (50, 50)}, velocity={1: (10, -20)})])
    assert np.allclose(run.states[5, 0, :2], (50, 50)) and np.allclose(run.states[5, 1, 2:4], (10, -20))
    assert np.array_equal(run.states[:5], base.states[:5])


def test_remove_object_updates_graph_frames_and_masks(springs):
    scene, spec, actions, base = springs
    i = int(spec.springs[0, 0])
    run = scene.rollout(spec, actions, interventions=[do(8, remove=[i])])
    assert run.present[:8, i].all() and not run.present[8:, i].any()
    assert run.adjacency[:8].sum() == base.adjacency[:8].sum()
    assert run.adjacency[8:, i].sum() == 0 and run.adjacency[8:, :, i].sum() == 0
    assert (run.masks[8:] == i + 1).sum() == 0 and (run.masks[:8] == i + 1).sum() > 0
    assert np.all(run.states[8:, i] == 0)
    assert i not in run.graph(-1).nodes


def test_add_object_grows_the_scene(springs):
    scene, spec, actions, base = springs
    n = spec.num_objects
    run = scene.rollout(spec, actions, interventions=[do(12, add=[ObjectSpec((50, 50), (0, 30), type=2)])])
    assert run.states.shape[1] == n + 1
    assert not run.present[:12, n].any() and run.present[12:, n].all()
    assert (run.masks[12] == n + 1).sum() > 0 and (run.masks[11] == n + 1).sum() == 0
    assert np.array_equal(run.states[:12, :n], base.states[:12])


def test_cut_and_add_springs_change_the_graph(springs):
    scene, spec, actions, base = springs
    i, j = (int(v) for v in spec.springs[0])
    cut = scene.rollout(spec, actions, interventions=[do(10, cut_spring=[(j, i)])])
    assert base.adjacency[-1, i, j] == 1 and cut.adjacency[9, i, j] == 1 and cut.adjacency[10, i, j] == 0
    assert cut.spring_present[9].sum() == cut.spring_present[10].sum() + 1
    pair = next(
        (a, b) for a in range(spec.num_objects) for b in range(a + 1, spec.num_objects) if base.adjacency[0, a, b] == 0
    )
    added = scene.rollout(spec, actions, interventions=[do(0, add_spring=[pair])])
    assert added.adjacency[0][pair] == added.adjacency[0][pair[::-1]] == 1
    with pytest.raises(ValueError, match="no spring between"):
        scene.rollout(spec, actions, interventions=[do(3, cut_spring=[pair])])


def test_change_charge_and_gravity():
    scene = envs.make_scene("charges", num_objects=2)
    spec = EpisodeSpec.from_objects([ObjectSpec((30, 30), charge=1.0), ObjectSpec((60, 30), charge=0.0, type=2)])
    actions = np.zeros(20, dtype=np.int32)
    base = scene.rollout(spec, actions, render_frames=False)
    assert base.adjacency.sum() == 0
    flipped = scene.rollout(spec, actions, interventions=[do(5, charge={1: -1.0})], render_frames=False)
    assert flipped.adjacency[4].sum() == 0 and flipped.adjacency[5].sum() == 2
    assert flipped.positions[-1, 1, 0] < base.positions[-1, 1, 0]  # now attracted to object 0
    fall = scene.rollout(spec, actions, interventions=[do(0, gravity=(0, 50))], render_frames=False)
    assert np.all(fall.positions[-1, :, 1] > base.positions[-1, :, 1])


def test_bad_interventions_are_refused(springs):
    scene, spec, actions, _ = springs
    with pytest.raises(ValueError, match=r"absent object\(s\) \[9\]"):
        scene.rollout(spec, actions, interventions=[do(2, mass={9: 1.0})])
    with pytest.raises(ValueError, match="past the last frame"):
        scene.rollout(spec, actions, interventions=[do(30, mass={0: 1.0})])
    with pytest.raises(ValueError, match="positive mass"):
        scene.rollout(spec, actions, interventions=[do(2, mass={0: 0.0})])
    with pytest.raises(ValueError, match="absent object"):
        scene.rollout(spec, actions, interventions=[do(2, remove=[0]), do(4, velocity={0: (1, 1)})])
    with pytest.raises(ValueError, match=">= 0"):
        do(-1)
