"""Environment adapters behind one small vectorised multi-agent interface.

``make_env`` builds a runnable vectorised env; ``env_spec`` only describes one (sizes,
action type, episode limit), cheaply, so a dataset can be checked without compiling
or starting a simulator.
"""

from __future__ import annotations

from typing import Any

from omiga_pl.envs.base import EnvSpec, StepResult, VecMultiAgentEnv
from omiga_pl.errors import ConfigError

__all__ = ["FAMILIES", "EnvSpec", "StepResult", "VecMultiAgentEnv", "env_spec", "make_env"]

FAMILIES = ("smax", "mamujoco")


def make_env(family: str, scenario: str, num_envs: int, **kwargs: Any) -> VecMultiAgentEnv:
    """Build ``num_envs`` parallel episodes of ``family``/``scenario``.

    E.g. ``smax``/``3m`` or ``mamujoco``/``Hopper-3x1``; ``kwargs`` go to the adapter.
    """
    if family == "smax":
        from omiga_pl.envs.smax import SMAXVecEnv

        return SMAXVecEnv(scenario, num_envs=num_envs, **kwargs)
    if family == "mamujoco":
        from omiga_pl.envs.mamujoco import MaMuJoCoVecEnv

        return MaMuJoCoVecEnv(scenario, num_envs=num_envs, **kwargs)
    raise ConfigError(f"env.family: expected one of {list(FAMILIES)}, found '{family}'")


def env_spec(family: str, scenario: str, **kwargs: Any) -> EnvSpec:
    """The :class:`EnvSpec` of ``family``/``scenario`` without building a runnable env."""
    if family == "smax":
        from omiga_pl.envs import smax

        if hasattr(smax, "smax_spec"):
            return smax.smax_spec(scenario, **kwargs)
        return smax.SMAXVecEnv(scenario, num_envs=1, **kwargs).spec
    if family == "mamujoco":
        from omiga_pl.envs.mamujoco import mamujoco_spec

        return mamujoco_spec(scenario, **kwargs)
    raise ConfigError(f"env.family: expected one of {list(FAMILIES)}, found '{family}'")
