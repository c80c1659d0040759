"""MaMuJoCo (gymnasium-robotics ``mamujoco_v1``, real ``mujoco``) behind :class:`VecMultiAgentEnv`.

A scenario is named ``<Scenario>-<agent_conf>``, e.g. ``Hopper-3x1``, ``Ant-2x4``,
``HalfCheetah-6x1`` (any pair gymnasium-robotics supports). ``num_envs`` independent
MuJoCo simulations are stepped in a Python loop (MuJoCo steps are microseconds; the
loop is not the bottleneck at evaluation sizes).

Two observation modes, chosen explicitly:

* ``reference`` (default, as the OMIGA reference and its datasets): every agent observes
  the *full* single-agent gym observation ``g`` (``env.state()``, size G) with its one-hot
  id appended, standardised within that vector (its own mean and population std, as
  the reference's ``normalize_obs``). O = G + N. The per-agent state is the same vector
  and the mixer sees their concatenation: S = N * O.
* ``local``: gymnasium-robotics' local observations (``agent_obsk`` nearest joints),
  zero-padded at the end to the largest agent's size. S = G (the global state).

Actions: agent i's vector is mapped onto the joint actuator vector with
gymnasium-robotics' own ``map_local_actions_to_global_action``. Agents with fewer
actuators than the largest are zero-padded (the padding is ignored when stepping).

Sizes (gymnasium-robotics 1.4.2, v5 envs, agent_obsk = 1):

============  ==  ======  ==========  ==========  =====================
task          N   G (v5)  reference   local       reference v2 (paper)
============  ==  ======  ==========  ==========  =====================
Hopper-3x1    3   11      14          8, 9, 8     14
Ant-2x4       2   105     107         63, 63      113 (v2 Ant obs 111)
HalfCheetah   6   17      23          9,9,8,9,9,8 23
============  ==  ======  ==========  ==========  =====================
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from omiga_pl.dims import ProblemDims
from omiga_pl.envs.base import EnvSpec, StepResult
from omiga_pl.errors import ConfigError

OBS_MODES = ("reference", "local")
DEFAULT_EPISODE_LIMIT = 1000
# Reference-mode observation sizes of the reference's MuJoCo v2 datasets.
REFERENCE_V2_OBS_DIM = {"Hopper-3x1": 14, "Ant-2x4": 113, "HalfCheetah-6x1": 23}


def split_scenario(scenario: str) -> tuple[str, str]:
    """``"Hopper-3x1"`` -> ``("Hopper", "3x1")``."""
    if not isinstance(scenario, str) or "-" not in scenario:
        raise ConfigError(
            f"env.scenario: expected '<Scenario>-<agent_conf>' such as 'Hopper-3x1', found {scenario!r}"
        )
    name, conf = scenario.rsplit("-", 1)
    return name, conf


def reference_observations(global_obs: np.ndarray, n_agents: int) -> np.ndarray:
    """The reference's per-agent observation: [..., G] -> [..., N, G + N] float32.

    ``concat(g, one_hot(i))`` standardised within the vector (subtract its mean, divide
    by its population std), exactly as the reference's ``normalize_obs``.
    """
    g = np.asarray(global_obs, dtype=np.float64)
    lead = g.shape[:-1]
    tiled = np.broadcast_to(g[..., None, :], (*lead, n_agents, g.shape[-1]))
    ids = np.broadcast_to(np.eye(n_agents), (*lead, n_agents, n_agents))
    vec = np.concatenate([tiled, ids], axis=-1)
    vec = (vec - vec.mean(-1, keepdims=True)) / vec.std(-1, keepdims=True)
    return vec.astype(np.float32)


def pad_agents(vectors: list[np.ndarray], width: int) -> np.ndarray:
    """Stack per-agent vectors of different lengths, zero-padded at the end: [N, width]."""
    out = np.zeros((len(vectors), width), dtype=np.float32)
    for i, v in enumerate(vectors):
        out[i, : len(v)] = v
    return out


def _make_raw(scenario: str, agent_obsk: int, max_steps: int) -> Any:
    from gymnasium_robotics import mamujoco_v1

    name, conf = split_scenario(scenario)
    # gymnasium-robotics warns about Adroit on import and MuJoCo about deprecated XML
    # attributes on load; neither concerns us, and they would flood every evaluation.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return mamujoco_v1.parallel_env(name, conf, agent_obsk=agent_obsk, max_episode_steps=max_steps)
        except (NotImplementedError, Exception) as error:  # unknown scenario / partition
            raise ConfigError(
                f"env.scenario: gymnasium-robotics MaMuJoCo cannot build {scenario!r}: {error}"
            ) from None


class MaMuJoCoVecEnv:
    """``num_envs`` MaMuJoCo episodes of one task, stepped together.

    Args:
        scenario: ``<Scenario>-<agent_conf>``, e.g. ``Hopper-3x1``.
        num_envs: E.
        obs_mode: ``reference`` or ``local`` (module docstring).
        agent_obsk: neighbourhood depth of local observations (also fixes the local
            sizes stored in datasets whatever the mode).
        max_steps: episode limit (default 1000).

    Besides the interface, :meth:`global_states` and :meth:`local_observations` expose
    what datasets store for both modes, and :meth:`split_joint_actions` /
    :meth:`join_agent_actions` the action mapping.
    """

    def __init__(
        self,
        scenario: str,
        num_envs: int,
        obs_mode: str = "reference",
        agent_obsk: int = 1,
        max_steps: int | None = None,
        observation_version: str = "v5",
    ) -> None:
        refusal = v2_refusal(scenario, obs_mode, observation_version)
        if refusal:
            raise ConfigError(f"env: evaluation refused: {refusal}")
        if obs_mode not in OBS_MODES:
            raise ConfigError(f"env.obs_mode: expected one of {list(OBS_MODES)}, found {obs_mode!r}")
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ConfigError(f"env.num_envs: expected a positive integer, found {num_envs!r}")
        max_steps = DEFAULT_EPISODE_LIMIT if max_steps is None else int(max_steps)
        if max_steps < 1:
            raise ConfigError(f"env.episode_limit: expected a positive integer, found {max_steps}")
        self.scenario, self.obs_mode, self.agent_obsk = scenario, obs_mode, int(agent_obsk)
        self.num_envs = int(num_envs)
        self.envs = [_make_raw(scenario, self.agent_obsk, max_steps) for _ in range(self.num_envs)]
        env = self.envs[0]
        self.agents = list(env.possible_agents)
        n = len(self.agents)
        self.local_sizes = [int(env.observation_space(a).shape[0]) for a in self.agents]
        self.action_sizes = [int(env.action_space(a).shape[0]) for a in self.agents]
        self.global_dim = int(env.single_agent_env.observation_space.shape[0])
        self.joint_action_dim = int(env.single_agent_env.action_space.shape[0])
        if obs_mode == "reference":
            obs_dim, state_dim = self.global_dim + n, n * (self.global_dim + n)
        else:
            obs_dim, state_dim = max(self.local_sizes), self.global_dim
        self.spec = EnvSpec(
            family="mamujoco",
            scenario=scenario,
            dims=ProblemDims(
                n_agents=n,
                obs_dim=obs_dim,
                state_dim=state_dim,
                action_type="continuous",
                action_dim=max(self.action_sizes),
            ),
            episode_limit=max_steps,
        )
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._done = np.ones(self.num_envs, dtype=bool)
        self._last: StepResult | None = None

    # ------------------------------------------------------------------ mappings
    def split_joint_actions(self, joint: np.ndarray) -> np.ndarray:
        """Joint single-agent action [G_a] -> per-agent actions [N, A] (zero-padded)."""
        local = self.envs[0].map_global_action_to_local_actions(np.asarray(joint))
        return pad_agents([local[a] for a in self.agents], self.spec.dims.action_dim)

    def join_agent_actions(self, actions: np.ndarray) -> np.ndarray:
        """Per-agent actions [N, A] -> the joint single-agent action [G_a]."""
        local = {
            a: np.asarray(actions[i, :size])
            for i, (a, size) in enumerate(zip(self.agents, self.action_sizes))
        }
        return np.asarray(self.envs[0].map_local_actions_to_global_action(local), dtype=np.float64)

    def global_states(self) -> np.ndarray:
        """[E, G] float32: every slot's single-agent gym observation (``env.state()``)."""
        return np.stack([env.state() for env in self.envs]).astype(np.float32)

    def local_observations(self) -> np.ndarray:
        """[E, N, max local size] float32: gymnasium-robotics local observations, zero-padded."""
        width = max(self.local_sizes)
        return np.stack(
            [pad_agents([env._get_obs_agent(i) for i in range(len(self.agents))], width) for env in self.envs]
        )

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        """(observations [E, N, O], states [E, S]) in this env's observation mode."""
        if self.obs_mode == "reference":
            obs = reference_observations(self.global_states(), self.spec.dims.n_agents)
            return obs, obs.reshape(self.num_envs, -1)
        return self.local_observations(), self.global_states()

    # ------------------------------------------------------------------ interface
    def reset(self, seed: int) -> StepResult:
        """New episode in every slot; slot i is seeded from (seed, i)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed: expected a non-negative integer, found {seed!r}")
        seeds = np.random.SeedSequence(int(seed)).generate_state(self.num_envs, np.uint32)
        for env, slot_seed in zip(self.envs, seeds):
            env.reset(seed=int(slot_seed))
        self._steps[:] = 0
        self._done[:] = False
        obs, states = self.observe()
        zeros = np.zeros(self.num_envs, dtype=bool)
        self._last = StepResult(
            observations=obs,
            states=states,
            avail_actions=None,
            rewards=np.zeros(self.num_envs, dtype=np.float32),
            terminated=zeros.copy(),
            truncated=zeros.copy(),
            won=zeros.copy(),
        )
        return self._last

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance live slots. ``actions``: [E, N, A] floats, clipped to [-1, 1]."""
        if self._last is None:
            raise RuntimeError("MaMuJoCoVecEnv.step() called before reset()")
        actions = np.asarray(actions, dtype=np.float64)
        expected = (self.num_envs, self.spec.dims.n_agents, self.spec.dims.action_dim)
        if actions.shape != expected:
            raise ValueError(f"actions: expected shape {list(expected)}, found {list(actions.shape)}")
        actions = np.clip(actions, -1.0, 1.0)
        last = self._last
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        terminated, truncated = last.terminated.copy(), last.truncated.copy()
        for e, env in enumerate(self.envs):
            if self._done[e]:
                continue
            local = {
                a: actions[e, i, :size] for i, (a, size) in enumerate(zip(self.agents, self.action_sizes))
            }
            _, reward, term, _, _ = env.step(local)
            self._steps[e] += 1
            rewards[e] = reward[self.agents[0]]  # one team reward, copied to every agent
            terminated[e] = bool(term[self.agents[0]])
            # Our own step count decides truncation, so the limit is ours, not gym's.
            truncated[e] = self._steps[e] >= self.spec.episode_limit and not terminated[e]
            self._done[e] = terminated[e] or truncated[e]
        obs, states = self.observe()
        # Finished slots keep their last observation (frozen, as the interface says).
        frozen = last.terminated | last.truncated
        obs[frozen], states[frozen] = last.observations[frozen], last.states[frozen]
        self._last = StepResult(
            observations=obs,
            states=states,
            avail_actions=None,
            rewards=rewards,
            terminated=terminated,
            truncated=truncated,
            won=np.zeros(self.num_envs, dtype=bool),
        )
        return self._last

    def close(self) -> None:
        for env in self.envs:
            env.close()


def v2_refusal(scenario: str, obs_mode: str, observation_version: str) -> str | None:
    """Why data with MuJoCo v2 observations cannot be evaluated online, or None if it can."""
    if observation_version not in ("v5", "v2"):
        raise ConfigError(f"observation_version: expected 'v5' or 'v2', found {observation_version!r}")
    if observation_version == "v5":
        return None
    if obs_mode != "reference":
        return f"v2 datasets hold reference-mode observations only, found obs_mode {obs_mode!r}"
    v2 = REFERENCE_V2_OBS_DIM.get(scenario)
    if v2 is None:
        return f"no known v2 observation size for {scenario!r}"
    v5 = _v5_reference_obs_dim(scenario)
    if v2 != v5:
        return (
            f"{scenario} v2 observations ({v2} per agent in reference mode, mujoco-py) differ from "
            f"gymnasium-robotics v5 ones ({v5}); they cannot be produced online"
        )
    return None


def mamujoco_options(
    env_config: Mapping[str, Any], card: Mapping[str, Any], eval_enabled: bool
) -> dict[str, Any]:
    """``obs_mode``, ``agent_obsk`` and ``observation_version`` for a dataset's env.

    The config's ``env.obs_mode`` / ``env.agent_obsk`` must agree with the card's (a
    dataset's observations are stored in one mode); null takes the card's. A dataset
    whose observations cannot be produced online (the card's ``evaluation_refused``,
    e.g. MuJoCo v2 Ant) is refused when evaluation is on, with the reason.
    """
    recorded_mode = card.get("obs_mode", "reference")
    obs_mode = env_config.get("obs_mode") or recorded_mode
    if obs_mode != recorded_mode:
        raise ConfigError(
            f"config: key 'env.obs_mode': the dataset stores '{recorded_mode}' observations but the config "
            f"asks for '{obs_mode}'; convert it with python -m omiga_pl.generate_mamujoco convert"
        )
    recorded_k = card.get("agent_obsk", 1)
    agent_obsk = recorded_k if env_config.get("agent_obsk") is None else env_config.get("agent_obsk")
    if obs_mode == "local" and agent_obsk != recorded_k:
        raise ConfigError(
            f"config: key 'env.agent_obsk': the dataset's local observations use agent_obsk={recorded_k}, "
            f"found {agent_obsk}"
        )
    if card.get("evaluation_refused") and eval_enabled:
        raise ConfigError(
            f"config: key 'eval.enabled': evaluation refused for this dataset: {card['evaluation_refused']}; "
            "set eval.enabled=false to train without online evaluation"
        )
    return {
        "obs_mode": obs_mode,
        "agent_obsk": int(agent_obsk),
        "observation_version": card.get("observation_version", "v5"),
    }


def _v5_reference_obs_dim(scenario: str) -> int:
    env = MaMuJoCoVecEnv(scenario, 1)
    env.close()
    return env.spec.dims.obs_dim


def mamujoco_spec(
    scenario: str,
    obs_mode: str = "reference",
    agent_obsk: int = 1,
    max_steps: int | None = None,
    observation_version: str = "v5",
) -> EnvSpec:
    """The :class:`EnvSpec` (builds one simulator: MuJoCo models load in milliseconds).

    With ``observation_version="v2"`` (reference datasets) the sizes are the v2 ones, so
    such a dataset trains even where v5 differs (Ant); building a runnable env for it is
    refused (:func:`v2_refusal`).
    """
    env = MaMuJoCoVecEnv(scenario, 1, obs_mode=obs_mode, agent_obsk=agent_obsk, max_steps=max_steps)
    env.close()
    spec = env.spec
    if observation_version == "v2" and v2_refusal(scenario, obs_mode, observation_version):
        v2 = REFERENCE_V2_OBS_DIM.get(scenario, spec.dims.obs_dim)
        dims = dataclasses.replace(spec.dims, obs_dim=v2, state_dim=spec.dims.n_agents * v2)
        spec = dataclasses.replace(spec, dims=dims)
    return spec
