"""Our environments as PettingZoo ``ParallelEnv``s: :func:`parallel_env`.

``parallel_env("smax", "3m")`` / ``parallel_env("mamujoco", "Hopper-3x1")`` (or any
:class:`VecMultiAgentEnv` via :class:`VecEnvParallel`) gives a standard ParallelEnv, so
PettingZoo tooling (``parallel_api_test``, wrappers, other libraries' training loops) runs
on them. One adapter slot backs the env.

Conventions:

* agents ``agent_0 .. agent_{N-1}``, all present for the whole episode (our adapters
  keep dead SMAX units in place, with only their no-op available);
* observations ``Box(-inf, inf, (O,), float32)``; discrete envs wrap them, as PettingZoo's
  classic envs, in a ``Dict`` with ``observation`` and ``action_mask`` (int8 [A], which
  PettingZoo's tools such as ``parallel_api_test`` sample with), the mask also in
  ``infos[agent]["action_mask"]``; ``state()`` is the adapter's global state;
* continuous envs have ``Box(-1, 1, (A,))`` actions;
* every agent receives the team reward; ``terminations`` / ``truncations`` are the
  episode's, and ``infos[agent]["won"]`` is set on envs with a win signal;
* ``reset(seed=None)`` draws a seed from the env's own generator (seeded by the first
  seeded reset), so the same seed sequence gives the same episodes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from omiga_pl.envs.base import StepResult, VecMultiAgentEnv


class VecEnvParallel(ParallelEnv):
    """A one-slot :class:`VecMultiAgentEnv` seen as a PettingZoo ParallelEnv."""

    metadata: ClassVar[dict] = {
        "name": "omiga_pl_vec_env_parallel",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(self, vec_env: VecMultiAgentEnv) -> None:
        if vec_env.num_envs != 1:
            raise ValueError(f"VecEnvParallel: expected a one-slot env, found num_envs={vec_env.num_envs}")
        self.vec_env = vec_env
        dims = vec_env.spec.dims
        self.metadata = {**self.metadata, "name": f"{vec_env.spec.family}_{vec_env.spec.scenario}"}
        self.possible_agents = [f"agent_{i}" for i in range(dims.n_agents)]
        self.agents: list[str] = []
        obs_space: spaces.Space = spaces.Box(-np.inf, np.inf, (dims.obs_dim,), np.float32)
        if dims.action_type == "discrete":
            act_space: spaces.Space = spaces.Discrete(dims.action_dim)
            mask_space = spaces.Box(0, 1, (dims.action_dim,), np.int8)
            obs_space = spaces.Dict({"observation": obs_space, "action_mask": mask_space})
        else:
            act_space = spaces.Box(-1.0, 1.0, (dims.action_dim,), np.float32)
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: act_space for a in self.possible_agents}
        self.state_space = spaces.Box(-np.inf, np.inf, (dims.state_dim,), np.float32)
        self.render_mode = None
        self._rng = np.random.default_rng()
        self._last: StepResult | None = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def _infos(self, result: StepResult) -> dict[str, dict]:
        infos: dict[str, dict] = {a: {} for a in self.possible_agents}
        for i, agent in enumerate(self.possible_agents):
            if result.avail_actions is not None:
                infos[agent]["action_mask"] = result.avail_actions[0, i].astype(np.int8)
            if self.vec_env.spec.has_win_signal:
                infos[agent]["won"] = bool(result.won[0])
        return infos

    def _obs(self, result: StepResult) -> dict[str, Any]:
        obs = {a: result.observations[0, i].astype(np.float32) for i, a in enumerate(self.possible_agents)}
        if result.avail_actions is None:
            return obs
        return {
            a: {"observation": obs[a], "action_mask": result.avail_actions[0, i].astype(np.int8)}
            for i, a in enumerate(self.possible_agents)
        }

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._last = self.vec_env.reset(int(self._rng.integers(2**31)))
        self.agents = list(self.possible_agents)
        return self._obs(self._last), self._infos(self._last)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if self._last is None or not self.agents:
            raise RuntimeError("VecEnvParallel.step() called before reset() or after the episode ended")
        dims = self.vec_env.spec.dims
        if dims.action_type == "discrete":
            joint = np.array([[int(actions[a]) for a in self.possible_agents]], dtype=np.int64)
        else:
            joint = np.stack([np.asarray(actions[a], np.float32) for a in self.possible_agents])[None]
        result = self.vec_env.step(joint)
        self._last = result
        reward = float(result.rewards[0])
        rewards = {a: reward for a in self.agents}
        terminations = {a: bool(result.terminated[0]) for a in self.agents}
        truncations = {a: bool(result.truncated[0]) and not bool(result.terminated[0]) for a in self.agents}
        observations, infos = self._obs(result), self._infos(result)
        if result.done[0]:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        if self._last is None:
            raise RuntimeError("VecEnvParallel.state() called before reset()")
        return self._last.states[0].astype(np.float32)

    def close(self) -> None:
        close = getattr(self.vec_env, "close", None)
        if callable(close):
            close()


def parallel_env(family: str, scenario: str, **kwargs: Any) -> VecEnvParallel:
    """``family``/``scenario`` (any :func:`omiga_pl.envs.make_env` env) as a ParallelEnv."""
    from omiga_pl.envs import make_env

    return VecEnvParallel(make_env(family, scenario, num_envs=1, **kwargs))
