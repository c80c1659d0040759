"""Any PettingZoo ``ParallelEnv`` behind the :class:`VecMultiAgentEnv` interface.

``env.family=pettingzoo env.scenario=<id>`` where ``<id>`` is

* a module path whose module has ``parallel_env`` (``mpe2.simple_spread_v3``,
  ``pettingzoo.butterfly.pistonball_v6``), or ``module:callable`` for any other factory
  returning a ParallelEnv (``my_pkg.envs:make_parallel``);
* a registered short name: ``butterfly/pistonball_v6`` (PettingZoo's own
  ``<family>/<name>`` as in ``pettingzoo.utils.all_modules``) or a bare mpe2 name
  (``simple_spread_v3``).

:class:`PettingZooVecEnv` runs ``num_envs`` copies side by side (plain Python loop: the
envs are CPU simulators and evaluation batches are small). What it maps:

* **Agents**: ``possible_agents`` in order, N of them. Observations are flattened (a
  ``Discrete`` observation one-hot encoded) and zero-padded to the largest agent's size (O).
* **Observations with masks**: a ``Dict`` observation with ``observation`` and
  ``action_mask`` keys (PettingZoo's classic convention) gives the observation and the
  availability mask; an ``action_mask`` in an agent's ``infos`` is used too (both, when
  both are there: an action must pass each).
  Discrete action spaces of different sizes are padded to the largest (A); padded
  actions are never available.
* **Global state**: ``env.state()`` when the env implements it (``state_source`` =
  ``env.state()``), else the concatenated padded observations [N * O]
  (``state_source`` = ``concatenated observations``). Generators write it in the card.
* **Team reward**: the mean over the N possible agents of the rewards the env returned
  this step (an absent agent contributes 0). For MPE ``simple_spread`` every agent's
  reward shares the global term, so this is the team's cooperative objective.
* **Agents that leave mid-episode** (no longer in ``env.agents``): their slot is frozen:
  last observation kept, no reward, and only action 0 marked available (SMAC's dead-agent
  no-op convention, so a masked policy stays well defined); whatever the policy picks for
  them is not sent to the env. The episode ends when ``env.agents`` is empty or every
  remaining agent is terminated/truncated: ``terminated`` when no agent was truncated,
  else ``truncated``; our own step counter truncates at ``max_steps`` too.
* **Actions**: ``Discrete`` (indices) or ``Box`` (the policy acts in [-1, 1]^A, mapped
  affinely onto each agent's Box bounds; smaller Boxes read their first entries).
* **Seeds**: slot i is reset with the i-th 32-bit word of ``SeedSequence(seed)``.

Shapes: E = num_envs, N = agents, O = obs_dim, S = state_dim, A = action_dim.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from omiga_pl.dims import ProblemDims
from omiga_pl.envs.base import EnvSpec, StepResult
from omiga_pl.errors import ConfigError

STATE_FROM_ENV = "env.state()"
STATE_FROM_OBS = "concatenated observations"
INSTALL_HINT = "pip install 'pettingzoo' plus the package that provides the environment (e.g. mpe2)"


def resolve_factory(scenario: str) -> Callable[..., Any]:
    """The callable that builds one ParallelEnv for an ``env.scenario`` id (module doc).

    PettingZoo's ``parallel_env`` is a ``**kwargs`` wrapper; the returned callable carries
    the module's ``raw_env`` as ``__signature_source__`` so defaults such as
    ``max_cycles`` can still be read.
    """
    if not isinstance(scenario, str) or not scenario:
        raise ConfigError(f"env.scenario: expected a PettingZoo environment id, found {scenario!r}")
    module_name, _, attr = scenario.partition(":")
    candidates = [module_name]
    if "/" in module_name:  # PettingZoo's registered "<family>/<name>"
        candidates = [f"pettingzoo.{module_name.replace('/', '.')}"]
    elif "." not in module_name:  # a bare mpe2 name
        candidates = [f"mpe2.{module_name}", f"pettingzoo.mpe.{module_name}"]
    errors = []
    for name in candidates:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            errors.append(f"{name}: {error}")
            continue
        factory = getattr(module, attr or "parallel_env", None)
        if not callable(factory):
            raise ConfigError(
                f"env.scenario: module {name!r} has no callable {attr or 'parallel_env'!r} "
                "(expected a PettingZoo environment module or 'module:factory')"
            )
        raw = getattr(module, "raw_env", None)
        if attr == "" and callable(raw):

            def build(__factory: Callable[..., Any] = factory, **kwargs: Any) -> Any:
                return __factory(**kwargs)

            build.__signature_source__ = raw  # type: ignore[attr-defined]
            return build
        return factory
    raise ConfigError(
        f"env.scenario: cannot import PettingZoo environment {scenario!r} "
        f"({'; '.join(errors)}); {INSTALL_HINT}"
    )


def mpe2_id(scenario: str) -> str:
    """OMAR / original-MPE task name -> mpe2 module (``simple_spread`` -> ``mpe2.simple_spread_v3``).

    The newest ``_v<k>`` that the installed mpe2 has; an id that already names a module
    (``simple_spread_v3``, ``mpe2.simple_spread_v3``) is returned as an importable path.
    """
    import pkgutil

    try:
        import mpe2
    except ImportError:
        raise ConfigError(f"env.family mpe needs mpe2 (pip install mpe2); {INSTALL_HINT}") from None
    name = scenario.removeprefix("mpe2.")
    modules = {m.name for m in pkgutil.iter_modules(mpe2.__path__)}
    if name in modules:
        return f"mpe2.{name}"
    versions = sorted(
        (int(m.rsplit("_v", 1)[1]), m)
        for m in modules
        if m.startswith(f"{name}_v") and m.rsplit("_v", 1)[1].isdigit()
    )
    if not versions:
        tasks = sorted(m for m in modules if not m.startswith("_") and m != "all_modules")
        raise ConfigError(f"env.scenario: expected an MPE task of mpe2 {tasks}, found {scenario!r}")
    return f"mpe2.{versions[-1][1]}"


def _signature(factory: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(getattr(factory, "__signature_source__", factory))
    except (TypeError, ValueError):
        return None


def _default_max_cycles(factory: Callable[..., Any]) -> int | None:
    """The factory's ``max_cycles`` default (MPE, butterfly), or None if it has none."""
    signature = _signature(factory)
    parameter = None if signature is None else signature.parameters.get("max_cycles")
    if parameter is None or not isinstance(parameter.default, int):
        return None
    return int(parameter.default)


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    signature = _signature(factory)
    if signature is None:
        return False
    parameters = signature.parameters
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _obs_box(space: Any) -> Any:
    """The observation part of an agent's space (a Dict's ``observation`` entry)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict) and "observation" in space.spaces:
        return space.spaces["observation"]
    return space


class PettingZooVecEnv:
    """``num_envs`` copies of one PettingZoo ParallelEnv, stepped together.

    Args:
        scenario: environment id (module docstring).
        num_envs: E.
        max_steps: episode limit; passed to the factory as ``max_cycles`` when it takes
            one, and enforced here in any case. Default: the factory's ``max_cycles``.
        env_kwargs: more keyword arguments for the factory.
        factory: build envs with this callable instead of resolving ``scenario``.

    Attributes: ``spec``, ``num_envs``, ``agents`` (possible agents, slot order),
    ``envs`` (the raw ParallelEnvs), ``state_source``.
    """

    def __init__(
        self,
        scenario: str,
        num_envs: int,
        max_steps: int | None = None,
        env_kwargs: dict[str, Any] | None = None,
        factory: Callable[..., Any] | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ConfigError(f"env.num_envs: expected a positive integer, found {num_envs!r}")
        factory = factory or resolve_factory(scenario)
        kwargs = dict(env_kwargs or {})
        if max_steps is None:
            max_steps = _default_max_cycles(factory)
        if max_steps is None:
            raise ConfigError(
                f"env.episode_limit: {scenario!r} has no max_cycles default; set env.episode_limit"
            )
        if isinstance(max_steps, bool) or int(max_steps) < 1:
            raise ConfigError(f"env.episode_limit: expected a positive integer, found {max_steps!r}")
        self.max_steps = int(max_steps)
        if _accepts(factory, "max_cycles"):
            kwargs.setdefault("max_cycles", self.max_steps)
        self.scenario, self.num_envs = scenario, int(num_envs)
        self.envs = [factory(**kwargs) for _ in range(self.num_envs)]
        self.agents = list(self.envs[0].possible_agents)
        self._spaces_from(self.envs[0])
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._done = np.ones(self.num_envs, dtype=bool)
        self._present = np.zeros((self.num_envs, len(self.agents)), dtype=bool)
        self._last: StepResult | None = None

    # ------------------------------------------------------------------ spaces
    def _spaces_from(self, env: Any) -> None:
        from gymnasium import spaces

        obs_spaces = [_obs_box(env.observation_space(a)) for a in self.agents]
        act_spaces = [env.action_space(a) for a in self.agents]
        for agent, space in zip(self.agents, obs_spaces):
            if not isinstance(space, (spaces.Box, spaces.Discrete)):
                raise ConfigError(
                    f"env.scenario {self.scenario!r}: agent {agent!r} observation space: expected a Box or "
                    f"Discrete (or a Dict with an 'observation' entry), found {space}"
                )
        # Discrete observations are one-hot encoded (n entries).
        self._one_hot = [int(s.n) if isinstance(s, spaces.Discrete) else 0 for s in obs_spaces]
        self.obs_sizes = [n or int(np.prod(s.shape)) for n, s in zip(self._one_hot, obs_spaces)]
        if all(isinstance(s, spaces.Discrete) for s in act_spaces):
            action_type = "discrete"
            self.action_sizes = [int(s.n) for s in act_spaces]
            self._low = self._high = None
        elif all(isinstance(s, spaces.Box) for s in act_spaces):
            action_type = "continuous"
            self.action_sizes = [int(np.prod(s.shape)) for s in act_spaces]
            self._act_shapes = [s.shape for s in act_spaces]
            self._low = [np.asarray(s.low, dtype=np.float64).reshape(-1) for s in act_spaces]
            self._high = [np.asarray(s.high, dtype=np.float64).reshape(-1) for s in act_spaces]
            for agent, low, high in zip(self.agents, self._low, self._high):
                if not (np.isfinite(low).all() and np.isfinite(high).all()):
                    raise ConfigError(
                        f"env.scenario {self.scenario!r}: agent {agent!r} action Box has infinite bounds; "
                        "a policy acting in [-1, 1] needs finite ones"
                    )
        else:
            raise ConfigError(
                f"env.scenario {self.scenario!r}: action spaces: expected all Discrete or all Box, "
                f"found {[type(s).__name__ for s in act_spaces]}"
            )
        n, obs_dim = len(self.agents), max(self.obs_sizes)
        has_state = callable(getattr(env, "state", None)) and getattr(env, "state_space", None) is not None
        if has_state:
            try:
                env.reset(seed=0)
                state_dim = int(np.asarray(env.state()).size)
            except NotImplementedError:
                has_state = False
        self.state_source = STATE_FROM_ENV if has_state else STATE_FROM_OBS
        self.spec = EnvSpec(
            family="pettingzoo",
            scenario=self.scenario,
            dims=ProblemDims(
                n_agents=n,
                obs_dim=obs_dim,
                state_dim=state_dim if has_state else n * obs_dim,
                action_type=action_type,
                action_dim=max(self.action_sizes),
            ),
            episode_limit=self.max_steps,
        )

    # ------------------------------------------------------------------ conversions
    def _observe(self, e: int, obs: dict, infos: dict, last: StepResult | None) -> tuple:
        """Slot e's (observations [N, O], avail [N, A] or None) from one reset/step.

        Agents not present in slot e (``self._present``) keep ``last``'s observation and
        only action 0 available; the others read ``obs`` / ``infos``.
        """
        dims = self.spec.dims
        out = np.zeros((dims.n_agents, dims.obs_dim), dtype=np.float32)
        avail = None
        if dims.action_type == "discrete":
            avail = np.zeros((dims.n_agents, dims.action_dim), dtype=bool)
        for i, agent in enumerate(self.agents):
            if agent not in obs or not self._present[e, i]:
                # Left the episode: frozen observation, only the no-op "available".
                if last is not None:
                    out[i] = last.observations[e, i]
                if avail is not None:
                    avail[i, 0] = True
                continue
            value, mask = obs[agent], None
            if isinstance(value, dict):
                mask = value.get("action_mask")
                value = value["observation"]
            if self._one_hot[i]:
                out[i, int(value)] = 1.0
            else:
                flat = np.asarray(value, dtype=np.float32).reshape(-1)
                out[i, : flat.size] = flat
            if avail is not None:
                size = self.action_sizes[i]
                avail[i, :size] = True
                # Both places count when an env fills both: an action must pass each mask.
                for where in (mask, (infos.get(agent) or {}).get("action_mask")):
                    if where is not None:
                        avail[i, :size] &= np.asarray(where, dtype=bool).reshape(-1)[:size]
                if not avail[i].any():  # no legal action: keep the policy defined
                    avail[i, 0] = True
        return out, avail

    def _state(self, e: int, observations: np.ndarray) -> np.ndarray:
        if self.state_source == STATE_FROM_ENV:
            return np.asarray(self.envs[e].state(), dtype=np.float32).reshape(-1)
        return observations.reshape(-1)

    def _env_action(self, i: int, action: np.ndarray) -> Any:
        if self.spec.dims.action_type == "discrete":
            return int(action)
        size = self.action_sizes[i]
        unit = np.clip(np.asarray(action, dtype=np.float64)[:size], -1.0, 1.0)
        scaled = self._low[i] + (unit + 1.0) * 0.5 * (self._high[i] - self._low[i])
        return scaled.astype(np.float32).reshape(self._act_shapes[i])

    # ------------------------------------------------------------------ interface
    def reset(self, seed: int) -> StepResult:
        """New episode in every slot; slot i is seeded from (seed, i)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed: expected a non-negative integer, found {seed!r}")
        seeds = np.random.SeedSequence(int(seed)).generate_state(self.num_envs, np.uint32)
        e_count, dims = self.num_envs, self.spec.dims
        observations = np.zeros((e_count, dims.n_agents, dims.obs_dim), dtype=np.float32)
        states = np.zeros((e_count, dims.state_dim), dtype=np.float32)
        avail = (
            None
            if dims.action_type == "continuous"
            else np.zeros((e_count, dims.n_agents, dims.action_dim), dtype=bool)
        )
        for e, (env, slot_seed) in enumerate(zip(self.envs, seeds)):
            obs, infos = env.reset(seed=int(slot_seed))
            self._present[e] = [a in env.agents for a in self.agents]
            observations[e], slot_avail = self._observe(e, obs, infos, None)
            if avail is not None:
                avail[e] = slot_avail
            states[e] = self._state(e, observations[e])
        self._steps[:] = 0
        self._done[:] = False
        zeros = np.zeros(e_count, dtype=bool)
        self._last = StepResult(
            observations, states, avail, np.zeros(e_count, np.float32), zeros, zeros.copy(), zeros.copy()
        )
        return self._last

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance live slots. ``actions``: [E, N] ints or [E, N, A] floats in [-1, 1]."""
        if self._last is None:
            raise RuntimeError("PettingZooVecEnv.step() called before reset()")
        dims, last = self.spec.dims, self._last
        actions = np.asarray(actions)
        expected = (self.num_envs, dims.n_agents) + (
            () if dims.action_type == "discrete" else (dims.action_dim,)
        )
        if actions.shape != expected:
            raise ValueError(f"actions: expected shape {list(expected)}, found {list(actions.shape)}")
        observations, states = last.observations.copy(), last.states.copy()
        avail = None if last.avail_actions is None else last.avail_actions.copy()
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        terminated, truncated = last.terminated.copy(), last.truncated.copy()
        for e, env in enumerate(self.envs):
            if self._done[e]:
                continue  # frozen: same observation, zero reward, flags kept
            joint = {
                a: self._env_action(i, actions[e, i])
                for i, a in enumerate(self.agents)
                if self._present[e, i]
            }
            obs, reward, term, trunc, infos = env.step(joint)
            self._steps[e] += 1
            rewards[e] = sum(float(reward.get(a, 0.0)) for a in joint) / dims.n_agents
            # The leavers' last observation is this step's (read before they are marked
            # absent); from the next step on their slot is frozen.
            leaving = [
                bool(term.get(a, False) or trunc.get(a, False) or a not in env.agents) for a in self.agents
            ]
            any_truncated = any(bool(trunc.get(a, False)) for a in joint)
            observations[e], slot_avail = self._observe(e, obs, infos, last)
            self._present[e] &= ~np.asarray(leaving)
            if avail is not None:
                avail[e] = slot_avail
                avail[e, ~self._present[e]] = False
                avail[e, ~self._present[e], 0] = True
            states[e] = self._state(e, observations[e])
            ended = not self._present[e].any()
            limit = self._steps[e] >= self.max_steps
            if ended:
                truncated[e] = any_truncated
                terminated[e] = not any_truncated
            elif limit:
                truncated[e] = True
            self._done[e] = terminated[e] or truncated[e]
        self._last = StepResult(
            observations, states, avail, rewards, terminated, truncated, np.zeros(self.num_envs, dtype=bool)
        )
        return self._last

    def close(self) -> None:
        for env in self.envs:
            env.close()


def pettingzoo_spec(scenario: str, max_steps: int | None = None, **kwargs: Any) -> EnvSpec:
    """The :class:`EnvSpec` of a PettingZoo environment (builds and resets one copy)."""
    env = PettingZooVecEnv(scenario, num_envs=1, max_steps=max_steps, **kwargs)
    env.close()
    return env.spec


def state_source(scenario: str, max_steps: int | None = None, **kwargs: Any) -> str:
    """``env.state()`` or ``concatenated observations``: what the global state is."""
    env = PettingZooVecEnv(scenario, num_envs=1, max_steps=max_steps, **kwargs)
    env.close()
    return env.state_source
