"""Real SMAC (StarCraft II) behind the :class:`VecMultiAgentEnv` interface: ``env.family=smac``.

Wraps ``smac.env.StarCraft2Env`` (oxwhirl/smac, installed from GitHub: PyPI's ``smac``
is SMAC3, an unrelated package) through its documented API only: ``get_env_info``,
``reset``, ``step``, ``get_obs``, ``get_state``, ``get_avail_actions``, ``close``, and
the ``battle_won`` / ``episode_limit`` entries of ``step``'s info. Imported lazily, so
nothing needs SMAC unless this family is used; when the package or the game is missing
the error is one line saying what to install.

Mapping onto the interface:

* ``terminated`` = SMAC's ``terminated`` unless its info says ``episode_limit`` (then it
  is a truncation: the battle was cut off, not decided); ``won`` = ``battle_won``.
* Dead units stay in their slot (SMAC gives them zero observations and only the no-op
  available), as in the SMAC datasets.
* Finished slots are frozen until the next reset, as the interface says.
* Seeds: SMAC seeds a game when it is launched (the ``seed`` argument), not per
  episode. Slot i's game is launched at the first :meth:`SMACVecEnv.reset` with the
  i-th word of ``SeedSequence(seed)``; later resets start new battles in the running
  game (StarCraft II is not bit-reproducible anyway, so evaluation statistics, not
  trajectories, are what repeats).

Shapes (3m): N = 3, O = 30, S = 48, A = 9, episode limit 60.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from omiga_pl.dims import ProblemDims
from omiga_pl.envs.base import EnvSpec, StepResult
from omiga_pl.errors import ConfigError

INSTALL = (
    "env.family smac needs the SMAC package and StarCraft II: "
    "pip install git+https://github.com/oxwhirl/smac.git (not PyPI's 'smac', which is SMAC3), "
    "then install StarCraft II with the SMAC maps and set SC2PATH"
)


def _env_class() -> Any:
    """``smac.env.StarCraft2Env``, or a one-line :class:`ConfigError` saying what to install."""
    try:
        from smac.env import StarCraft2Env
    except ImportError as error:
        raise ConfigError(f"{INSTALL} (import failed: {error})") from None
    return StarCraft2Env


def _spec_from_info(scenario: str, info: dict[str, Any], max_steps: int | None) -> EnvSpec:
    return EnvSpec(
        family="smac",
        scenario=scenario,
        dims=ProblemDims(
            n_agents=int(info["n_agents"]),
            obs_dim=int(info["obs_shape"]),
            state_dim=int(info["state_shape"]),
            action_type="discrete",
            action_dim=int(info["n_actions"]),
        ),
        episode_limit=int(max_steps or info["episode_limit"]),
        has_win_signal=True,
    )


def smac_spec(scenario: str, max_steps: int | None = None) -> EnvSpec:
    """The :class:`EnvSpec` of a SMAC map from ``get_env_info`` (the game is not launched)."""
    env = _env_class()(map_name=scenario)
    try:
        return _spec_from_info(scenario, env.get_env_info(), max_steps)
    finally:
        env.close()


class SMACVecEnv:
    """``num_envs`` SMAC battles of one map (one StarCraft II process each).

    Args:
        scenario: SMAC map name (``3m``, ``2s3z``, ``MMM2``...).
        num_envs: E.
        max_steps: episode limit passed to SMAC as ``episode_limit`` (default: the map's).
    """

    def __init__(self, scenario: str, num_envs: int, max_steps: int | None = None) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ConfigError(f"env.num_envs: expected a positive integer, found {num_envs!r}")
        self._cls = _env_class()
        self.scenario, self.num_envs = scenario, int(num_envs)
        self._kwargs: dict[str, Any] = {"map_name": scenario}
        if max_steps is not None:
            self._kwargs["episode_limit"] = int(max_steps)
        probe = self._cls(**self._kwargs)
        try:
            self.spec = _spec_from_info(scenario, probe.get_env_info(), max_steps)
        finally:
            probe.close()
        self.envs: list[Any] | None = None
        self._done = np.ones(self.num_envs, dtype=bool)
        self._last: StepResult | None = None

    def _launch(self, seed: int) -> list[Any]:
        seeds = np.random.SeedSequence(int(seed)).generate_state(self.num_envs, np.uint32)
        return [self._cls(**self._kwargs, seed=int(s)) for s in seeds]

    def _observe(self, env: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs = np.asarray(env.get_obs(), dtype=np.float32).reshape(self.spec.dims.n_agents, -1)
        state = np.asarray(env.get_state(), dtype=np.float32).reshape(-1)
        avail = np.asarray(env.get_avail_actions(), dtype=bool)
        return obs, state, avail

    def reset(self, seed: int) -> StepResult:
        """A new battle in every slot (games launched, seeded, on the first call)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed: expected a non-negative integer, found {seed!r}")
        if self.envs is None:
            self.envs = self._launch(seed)
        views = []
        for env in self.envs:
            try:
                env.reset()
            except ConfigError:
                raise
            except Exception as error:  # the game binary or maps are missing / broken
                raise ConfigError(f"{INSTALL} (StarCraft II failed to start: {error})") from None
            views.append(self._observe(env))
        obs, states, avail = (np.stack(parts) for parts in zip(*views))
        zeros = np.zeros(self.num_envs, dtype=bool)
        self._done[:] = False
        self._last = StepResult(
            obs, states, avail, np.zeros(self.num_envs, np.float32), zeros, zeros.copy(), zeros.copy()
        )
        return self._last

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance live battles. ``actions``: [E, N] ints (must be available)."""
        if self._last is None or self.envs is None:
            raise RuntimeError("SMACVecEnv.step() called before reset()")
        actions = np.asarray(actions)
        expected = (self.num_envs, self.spec.dims.n_agents)
        if actions.shape != expected:
            raise ValueError(f"actions: expected shape {list(expected)}, found {list(actions.shape)}")
        last = self._last
        obs, states, avail = last.observations.copy(), last.states.copy(), last.avail_actions.copy()
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        terminated, truncated, won = last.terminated.copy(), last.truncated.copy(), last.won.copy()
        for e, env in enumerate(self.envs):
            if self._done[e]:
                continue
            reward, done, info = env.step([int(a) for a in actions[e]])
            rewards[e] = float(reward)
            cut = bool(info.get("episode_limit", False))
            terminated[e], truncated[e] = bool(done) and not cut, cut
            won[e] = bool(info.get("battle_won", False))
            self._done[e] = bool(done) or cut
            obs[e], states[e], avail[e] = self._observe(env)
        self._last = StepResult(obs, states, avail, rewards, terminated, truncated, won)
        return self._last

    def close(self) -> None:
        for env in self.envs or []:
            env.close()
