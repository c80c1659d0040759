"""SMAX (JaxMARL's StarCraft-like micromanagement) behind the :class:`VecMultiAgentEnv` interface.

:class:`SMAXVecEnv` runs ``num_envs`` battles of ``HeuristicEnemySMAX`` (our agents are the
allies; the enemies follow JaxMARL's built-in heuristic) side by side with ``jax.vmap``.
Reset, step and the heuristic ally policy are each one ahead-of-time compiled XLA program,
built when the adapter is constructed, so nothing compiles in the middle of an evaluation
and a call whose inputs drift in dtype fails loudly instead of silently recompiling.

What the adapter adds on top of JaxMARL:

* ``step_env`` (not the auto-resetting ``step``), with finished slots frozen: a slot whose
  battle has ended returns the same observation / state / availability, reward 0 and its
  done flags until the next :meth:`SMAXVecEnv.reset`.
* ``terminated`` (a team was wiped out) and ``truncated`` (the time limit was reached
  first) kept apart; SMAX's own ``done`` mixes the two.
* ``won`` = every enemy dead and at least one ally alive (SMAX can produce draws, where
  both teams die in the same step; those are terminated but not won).
* Observations stacked in ``env.agents`` order: JaxMARL returns dicts, whose keys sort as
  strings (``ally_10`` before ``ally_2``) once a scenario has more than 10 agents.
* Every random draw comes from a key carried per slot, so ``(seed, action sequence)``
  determines the whole trajectory.

Shapes: E = ``num_envs``, N = allies, O = ``obs_dim``, S = ``state_dim``, A = ``action_dim``.
For ``3m``: N = 3, O = 75, S = 72, A = 8 (SMAX's dims, not SMAC's 30 / 48 / 9).
"""

from __future__ import annotations

import io
import sys
from typing import Any, NamedTuple

import numpy as np

from omiga_pl.dims import ProblemDims
from omiga_pl.envs.base import EnvSpec, StepResult
from omiga_pl.errors import ConfigError

MAX_SEED = 2**32  # jax.random.PRNGKey folds seeds into 32 bits; refuse rather than alias


def _import_jaxmarl() -> Any:
    """Import jaxmarl without its import-time prints on stdout or its stream resets.

    jaxmarl 0.2.0 prints two lines on import, and its MaBrax module sets ``sys.stdout``
    / ``sys.stderr`` back to ``sys.__stdout__`` / ``sys.__stderr__`` midway (which also
    escapes ``contextlib.redirect_stdout`` and pytest's capture). Point both the
    streams and their ``__std*__`` originals at a sink, then restore all four.
    """
    if "jaxmarl" in sys.modules:
        return sys.modules["jaxmarl"]
    saved = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    sink = io.StringIO()
    sys.stdout = sys.__stdout__ = sink
    sys.__stderr__ = sys.stderr  # keep warnings visible, but on the caller's stderr
    try:
        import jaxmarl
    finally:
        sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__ = saved
    return jaxmarl


def available_scenarios() -> list[str]:
    """SMAC map names that the installed jaxmarl registers for SMAX, sorted."""
    _import_jaxmarl()
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

    return sorted(MAP_NAME_TO_SCENARIO)


def jaxmarl_version() -> str:
    from importlib.metadata import version

    return version("jaxmarl")


def smax_spec(scenario: str, max_steps: int | None = None) -> EnvSpec:
    """The :class:`EnvSpec` of a scenario without compiling anything (for dataset checks)."""
    return _spec_of(_make_jaxmarl_env(scenario, max_steps), scenario)


def _make_jaxmarl_env(scenario: str, max_steps: int | None) -> Any:
    """A ``HeuristicEnemySMAX`` for a SMAC map name, with every argument checked first."""
    names = available_scenarios()
    if not isinstance(scenario, str) or scenario not in names:
        raise ConfigError(f"env.scenario: expected one of {names}, found {scenario!r}")
    if max_steps is not None and (
        isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1
    ):
        raise ConfigError(
            f"env.episode_limit (max_steps): expected a positive integer or null, found {max_steps!r}"
        )
    jaxmarl = _import_jaxmarl()
    from jaxmarl.environments.smax import map_name_to_scenario

    kwargs: dict[str, Any] = {"scenario": map_name_to_scenario(scenario)}
    if max_steps is not None:
        kwargs["max_steps"] = int(max_steps)
    return jaxmarl.make("HeuristicEnemySMAX", **kwargs)


def _spec_of(env: Any, scenario: str) -> EnvSpec:
    return EnvSpec(
        family="smax",
        scenario=scenario,
        dims=ProblemDims(
            n_agents=int(env.num_agents),
            obs_dim=int(env.obs_size),
            state_dim=int(env.state_size),
            action_type="discrete",
            action_dim=int(env.action_spaces[env.agents[0]].n),
        ),
        episode_limit=int(env.max_steps),
        has_win_signal=True,
    )


class _Carry(NamedTuple):
    """Everything the adapter keeps between calls, batched over slots (leading axis E)."""

    env_state: Any  # HeuristicEnemySMAX State (unit positions, health, enemy policy memory...)
    key: Any  # [E, 2] uint32: the slot's PRNG key for its next step
    policy_state: Any  # ally HeuristicPolicyState, leaves [E, N, ...]
    obs: Any  # [E, N, O] float32
    world_state: Any  # [E, S] float32
    avail: Any  # [E, N, A] bool
    reward: Any  # [E] float32, reward of the step that led here
    terminated: Any  # [E] bool
    truncated: Any  # [E] bool
    won: Any  # [E] bool


class SMAXVecEnv:
    """``num_envs`` SMAX battles of one scenario, stepped together.

    Args:
        scenario: a SMAC map name that SMAX registers (``3m``, ``2s3z``, ``5m_vs_6m``...;
            see :func:`available_scenarios`).
        num_envs: E, the number of battles run side by side.
        max_steps: episode limit in agent steps (SMAX default: 100).

    Attributes:
        spec: the :class:`EnvSpec` (family ``smax``, discrete actions, episode_limit).
        num_envs: E.

    Construction compiles three programs (reset, step, heuristic policy): a few
    seconds on CPU, paid once per adapter.
    """

    def __init__(self, scenario: str, num_envs: int, max_steps: int | None = None) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ConfigError(f"env.num_envs: expected a positive integer, found {num_envs!r}")
        self._env = _make_jaxmarl_env(scenario, max_steps)
        self.num_envs = int(num_envs)
        self.agents: list[str] = list(self._env.agents)
        self.spec = _spec_of(self._env, scenario)
        self._carry: _Carry | None = None
        self._build()

    # ------------------------------------------------------------------ compiled programs
    def _build(self) -> None:
        import jax
        import jax.numpy as jnp
        from jaxmarl.environments.smax.heuristic_enemy import (
            create_heuristic_policy,
            get_heuristic_policy_initial_state,
        )

        env, agents = self._env, self.agents
        n_allies = env.num_allies
        max_steps = self.spec.episode_limit
        # Dead units can only "stop"; it is the one action that is always available.
        stop_action = env.num_movement_actions - 1
        heuristic = jax.vmap(create_heuristic_policy(env._env, team=0))

        def strong(tree: Any) -> Any:
            # JaxMARL's initial states hold weak-typed scalars (e.g. the heuristic's
            # last_attacked_enemy = -1) that become strong after one step; the second
            # distinct input type is why a plain jitted step compiles twice. Pinning
            # every leaf to a strong dtype gives one carry type for the whole episode.
            return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)

        def initial_policy_state() -> Any:
            one = get_heuristic_policy_initial_state()
            return strong(jax.tree.map(lambda *xs: jnp.stack(xs), *([one] * n_allies)))

        def observe(env_state: Any, obs: dict) -> tuple:
            # Index by env.agents, never by dict order (keys sort as strings past 10 agents).
            obs_arr = jnp.stack([obs[a] for a in agents]).astype(jnp.float32)
            avail = env.get_avail_actions(env_state)
            avail_arr = jnp.stack([avail[a] for a in agents]).astype(jnp.bool_)
            return obs_arr, obs["world_state"].astype(jnp.float32), avail_arr

        def policy(key: Any, policy_state: Any, obs: Any, avail: Any) -> tuple:
            # The heuristic is written for one unit; vmap over allies with one key each.
            keys = jax.random.split(key, n_allies)
            actions, new_state = heuristic(keys, policy_state, obs)
            # It proposes moves for dead units, and it judges attack range from the
            # observation while availability uses exact distances (they could disagree
            # at the boundary; never seen on 3m): fall back to "stop", always available.
            legal = jnp.take_along_axis(avail, actions[:, None], axis=1)[:, 0]
            return jnp.where(legal, actions, stop_action).astype(jnp.int32), strong(new_state)

        def split_step_key(key: Any) -> tuple:
            # One split per step: [next carry key, env step key, heuristic policy key].
            next_key, env_key, policy_key = jax.random.split(key, 3)
            return next_key, env_key, policy_key

        def reset_slot(key: Any) -> _Carry:
            reset_key, carry_key = jax.random.split(key)
            obs, env_state = env.reset(reset_key)
            obs_arr, world, avail = observe(env_state, obs)
            false = jnp.zeros((), jnp.bool_)
            return strong(
                _Carry(
                    env_state=env_state,
                    key=carry_key,
                    policy_state=initial_policy_state(),
                    obs=obs_arr,
                    world_state=world,
                    avail=avail,
                    reward=jnp.zeros((), jnp.float32),
                    terminated=false,
                    truncated=false,
                    won=false,
                )
            )

        def step_slot(carry: _Carry, actions: Any) -> _Carry:
            next_key, env_key, policy_key = split_step_key(carry.key)
            obs, env_state, rewards, _, _ = env.step_env(
                env_key, carry.env_state, {a: actions[i] for i, a in enumerate(agents)}
            )
            # Advance the heuristic's memory (target, last attacked enemy) on every step,
            # from the observation the step acted on, so heuristic_actions() stays a pure
            # query whatever the caller actually played.
            _, policy_state = policy(policy_key, carry.policy_state, carry.obs, carry.avail)
            obs_arr, world, avail = observe(env_state, obs)
            alive = env_state.state.unit_alive
            allies_dead = ~jnp.any(alive[:n_allies])
            enemies_dead = ~jnp.any(alive[n_allies:])
            terminated = allies_dead | enemies_dead
            new = strong(
                _Carry(
                    env_state=env_state,
                    key=next_key,
                    policy_state=policy_state,
                    obs=obs_arr,
                    world_state=world,
                    avail=avail,
                    # All allies get the same team reward in SMAX (tested); take ally 0's.
                    reward=rewards[agents[0]].astype(jnp.float32),
                    terminated=terminated,
                    truncated=(env_state.state.step >= max_steps) & ~terminated,
                    won=enemies_dead & ~allies_dead,
                )
            )
            frozen = carry.terminated | carry.truncated
            out = jax.tree.map(lambda old, fresh: jnp.where(frozen, old, fresh), carry, new)
            return out._replace(reward=jnp.where(frozen, jnp.zeros_like(new.reward), new.reward))

        def heuristic_slot(carry: _Carry) -> Any:
            _, _, policy_key = split_step_key(carry.key)
            actions, _ = policy(policy_key, carry.policy_state, carry.obs, carry.avail)
            return actions

        def reset_all(seed: Any) -> _Carry:
            return jax.vmap(reset_slot)(jax.random.split(jax.random.PRNGKey(seed), self.num_envs))

        seed_spec = jax.ShapeDtypeStruct((), jnp.uint32)
        carry_spec = jax.eval_shape(reset_all, seed_spec)
        actions_spec = jax.ShapeDtypeStruct((self.num_envs, n_allies), jnp.int32)
        # Ahead-of-time compilation: exactly one executable each, built now.
        self._reset_fn = jax.jit(reset_all).lower(seed_spec).compile()
        self._step_fn = jax.jit(jax.vmap(step_slot)).lower(carry_spec, actions_spec).compile()
        self._heuristic_fn = jax.jit(jax.vmap(heuristic_slot)).lower(carry_spec).compile()
        self._jax = jax

    # ------------------------------------------------------------------ public interface
    def reset(self, seed: int) -> StepResult:
        """Start a new battle in every slot; the same ``seed`` gives the same battles.

        ``seed`` must be an integer in [0, 2**32). Returns observations [E, N, O],
        states [E, S], avail_actions [E, N, A] and zero rewards / flags [E].
        """
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < MAX_SEED:
            raise ConfigError(f"seed: expected an integer in [0, 2**32), found {seed!r}")
        self._carry = self._reset_fn(np.uint32(seed))
        return self._result()

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance every live slot by one agent step.

        ``actions``: [E, N] integers in [0, A). An unavailable action is passed on to
        SMAX, which ignores an impossible attack (the unit does nothing that step).
        Slots already done stay frozen (reward 0, flags kept).
        """
        if self._carry is None:
            raise RuntimeError("SMAXVecEnv.step() called before reset()")
        actions = np.asarray(actions)
        expected = (self.num_envs, self.spec.dims.n_agents)
        if actions.shape != expected or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"actions: expected integers of shape {list(expected)}, found "
                f"{actions.dtype} {list(actions.shape)}"
            )
        n_actions = self.spec.dims.action_dim
        if actions.size and (actions.min() < 0 or actions.max() >= n_actions):
            raise ValueError(
                f"actions: expected indices in [0, {n_actions}), found [{actions.min()}, {actions.max()}]"
            )
        self._carry = self._step_fn(self._carry, actions.astype(np.int32))
        return self._result()

    def heuristic_actions(self) -> np.ndarray:
        """[E, N] int64: JaxMARL's heuristic ally policy's actions for the current states.

        Each ally keeps its own heuristic memory (where it is heading, whom it last
        attacked), reset with the episode and advanced by every :meth:`step`, so the
        query has no side effects: calling it twice gives the same actions. Actions are
        always available: where the heuristic proposes an unavailable one (a dead unit
        or a target at the very edge of attack range) it is replaced by "stop".
        """
        if self._carry is None:
            raise RuntimeError("SMAXVecEnv.heuristic_actions() called before reset()")
        return np.array(self._jax.device_get(self._heuristic_fn(self._carry)), dtype=np.int64)

    def _result(self) -> StepResult:
        c = self._carry
        # One device-to-host transfer for everything the caller sees.
        obs, world, avail, reward, terminated, truncated, won = self._jax.device_get(
            (c.obs, c.world_state, c.avail, c.reward, c.terminated, c.truncated, c.won)
        )
        return StepResult(
            observations=np.array(obs, dtype=np.float32),
            states=np.array(world, dtype=np.float32),
            avail_actions=np.array(avail, dtype=bool),
            rewards=np.array(reward, dtype=np.float32),
            terminated=np.array(terminated, dtype=bool),
            truncated=np.array(truncated, dtype=bool),
            won=np.array(won, dtype=bool),
        )
