"""gymnasium: check_env on every scene, registration, observation types, ground truth in info."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs


@pytest.mark.parametrize("name", sorted(envs.SCENES))
@pytest.mark.parametrize("obs_type", ["pixels", "state"])
def test_check_env(name, obs_type):
    env = gym.make(envs.GYM_IDS[name], obs_type=obs_type, max_steps=5)
    check_env(env.unwrapped, skip_render_check=False)
    assert env.render_mode == "rgb_array"
    assert isinstance(envs.make(name), gym.Env)


@pytest.mark.parametrize("name", sorted(envs.SCENES))
def test_registered_with_gymnasium(name):
    env = gym.make(envs.GYM_IDS[name], max_steps=3, num_objects=4)
    obs, info = env.reset(seed=1)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert info["adjacency"].shape == (4, 4) and info["mask"].max() == 4
    frame = env.render()
    assert np.array_equal(frame, obs)


def test_seeded_reset_is_deterministic_and_actions_are_checked():
    env = envs.make("springs", obs_type="state", max_steps=4)
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    assert np.array_equal(a, b)
    steps = [env.step(1) for _ in range(4)]
    assert steps[-1][3] is True and not any(s[2] for s in steps)
    with pytest.raises(ValueError, match="invalid action"):
        env.step(10_000)


def test_env_matches_rollout():
    """Stepping the env reproduces Scene.rollout of the episode's spec and the same actions."""
    env = envs.make("billiards", obs_type="state", max_steps=10, num_objects=3)
    first, _ = env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 13, 9)
    steps = [env.step(int(a)) for a in actions]
    states = [first] + [s[0] for s in steps]
    run = env.unwrapped.scene.rollout(env.unwrapped.episode_spec, actions, render_frames=False)
    assert np.array_equal(np.array(states), run.states)
    assert np.array_equal(np.array([s[4]["contacts"] for s in steps]), run.contacts[1:])
    assert np.array_equal(np.array([s[4]["wall_contacts"] for s in steps]), run.wall_contacts[1:])
