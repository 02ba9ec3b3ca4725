"""gymnasium wrapper: every scene as an ``Env`` with ``render_mode="rgb_array"``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.scene import STATE_FEATURES, EpisodeSpec, Scene, World


class CausalSceneEnv(gym.Env):
    """A scene as a gymnasium environment.

    Observations are RGB frames ``(H, W, 3)`` uint8 (``obs_type="pixels"``) or object states ``(N_max, F)``
    float32 (``obs_type="state"``). Actions are ``Discrete(1 + 4 * N_max)``: 0 is a no-op, ``1 + 4 * i + d`` pushes
    object ``i`` in direction ``d`` (up, right, down, left). The reward is always 0; episodes are truncated after
    ``max_steps``. ``info`` carries the ground truth: ``adjacency``, ``contacts``, ``wall_contacts`` (objects that
    touched a wall during the last step), ``mask`` and ``num_objects``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        scene: str | Scene = "springs",
        render_mode: str | None = "rgb_array",
        max_steps: int = 50,
        obs_type: str = "pixels",
        **config: Any,
    ):
        from envs import make_scene

        self.scene = make_scene(scene, **config) if isinstance(scene, str) else scene
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        if obs_type not in ("pixels", "state"):
            raise ValueError(f"obs_type must be 'pixels' or 'state', got {obs_type!r}")
        cfg = self.scene.config
        self.render_mode, self.obs_type, self.max_steps = render_mode, obs_type, int(max_steps)
        self.action_space = spaces.Discrete(cfg.num_actions)
        if obs_type == "pixels":
            self.observation_space = spaces.Box(0, 255, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
        else:
            bound = np.float32(1e6)  # finite, far beyond any arena coordinate or speed
            self.observation_space = spaces.Box(-bound, bound, (cfg.max_objects, len(STATE_FEATURES)), dtype=np.float32)
        self.episode_spec: EpisodeSpec | None = None  # initial conditions (gymnasium owns `spec`)
        self.world: World | None = None
        self._t = 0

    def _frame(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame and mask of the world whose (N, F) ``state`` was just read."""
        from envs.render import render_frame

        w, cfg = self.world, self.scene.config
        draw = cfg.draw_springs and len(w.springs) > 0
        return render_frame(
            state[:, :2],
            w.size,
            self.scene.colours(w.type, w.charge),
            arena_size=cfg.arena_size,
            image_size=cfg.image_size,
            shapes=w.shape_kind,
            angles=state[:, 4],
            present=w.present,
            springs=np.array(list(w.springs), dtype=np.int64).reshape(-1, 2) if draw else None,
        )

    def _observe(self) -> tuple[np.ndarray, dict]:
        state = np.zeros((self.scene.config.max_objects, len(STATE_FEATURES)), dtype=np.float32)
        s = self.world.state()
        state[: len(s)] = s
        frame, mask = self._frame(s)
        info = {
            "num_objects": int(self.world.present.sum()),
            "adjacency": self.world.adjacency(),
            "mask": mask,
            "contacts": self.world.contacts.copy(),
            "wall_contacts": self.world.wall_contacts.copy(),
            "state": state,
        }
        return (frame if self.obs_type == "pixels" else state), info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        num_objects = (options or {}).get("num_objects")
        self.episode_spec = self.scene.sample_spec(self.np_random, num_objects)
        self.world = self.scene.world(self.episode_spec)
        self._t = 0
        return self._observe()

    def step(self, action):
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        self.world.step(int(action))
        self._t += 1
        obs, info = self._observe()
        return obs, 0.0, False, self._t >= self.max_steps, info

    def render(self):
        if self.render_mode != "rgb_array" or self.world is None:
            return None
        return self._frame(self.world.state())[0]
