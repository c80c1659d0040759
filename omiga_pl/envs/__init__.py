"""Environment adapters behind one small vectorised multi-agent interface.

``make_env`` builds a runnable vectorised env; ``env_spec`` only describes one (sizes,
action type, episode limit), cheaply, so a dataset can be checked without compiling
or starting a simulator; ``env_options`` turns the ``env.*`` config and a dataset card
into the keyword arguments both take.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omiga_pl.envs.base import EnvSpec, StepResult, VecMultiAgentEnv
from omiga_pl.errors import ConfigError

__all__ = ["FAMILIES", "EnvSpec", "StepResult", "VecMultiAgentEnv", "env_options", "env_spec", "make_env"]

FAMILIES = ("smax", "mamujoco", "pettingzoo", "mpe", "smac")
# env.* keys only one family reads; any other family refuses them rather than ignore them.
FAMILY_OPTIONS = {"mamujoco": ("obs_mode", "agent_obsk")}


def env_options(
    family: str | None, env_config: Mapping[str, Any], card: Mapping[str, Any], eval_enabled: bool
) -> dict[str, Any]:
    """Keyword arguments for :func:`make_env` / :func:`env_spec` from ``env.*`` and the card.

    ``env_config`` is the config's ``env`` section; ``card`` the dataset card. The episode
    limit is the config's, else the card's (else the adapter's default); the family's own
    options come from its adapter (:func:`omiga_pl.envs.mamujoco.mamujoco_options`), which
    may refuse online evaluation when ``eval_enabled``.
    """
    episode_limit = env_config.get("episode_limit") or card.get("episode_limit")
    options: dict[str, Any] = {} if episode_limit is None else {"max_steps": int(episode_limit)}
    for owner, keys in FAMILY_OPTIONS.items():
        if owner == family:
            continue
        for key in keys:
            if env_config.get(key) is not None:
                raise ConfigError(
                    f"config: key 'env.{key}': only used by env.family {owner}, found {family!r}"
                )
    if family == "mamujoco":
        from omiga_pl.envs.mamujoco import mamujoco_options

        options.update(mamujoco_options(env_config, card, eval_enabled))
    if family == "pettingzoo" and card.get("env_kwargs"):
        # The factory arguments the data was generated with (e.g. continuous_actions).
        options["env_kwargs"] = dict(card["env_kwargs"])
    if family == "mpe" and card.get("action_type") == "continuous":
        # OMAR's MPE files with continuous actions: mpe2's Box-action variant.
        options["env_kwargs"] = {"continuous_actions": True}
    return options


def make_env(family: str, scenario: str, num_envs: int, **kwargs: Any) -> VecMultiAgentEnv:
    """Build ``num_envs`` parallel episodes of ``family``/``scenario``.

    E.g. ``smax``/``3m``, ``mamujoco``/``Hopper-3x1``, ``pettingzoo``/``mpe2.simple_spread_v3``
    (any ParallelEnv, :mod:`omiga_pl.envs.pettingzoo_in`) or ``smac``/``3m`` (real SMAC,
    :mod:`omiga_pl.envs.smac`); ``kwargs`` go to the adapter.
    """
    if family == "smax":
        from omiga_pl.envs.smax import SMAXVecEnv

        return SMAXVecEnv(scenario, num_envs=num_envs, **kwargs)
    if family == "mamujoco":
        from omiga_pl.envs.mamujoco import MaMuJoCoVecEnv

        return MaMuJoCoVecEnv(scenario, num_envs=num_envs, **kwargs)
    if family in ("pettingzoo", "mpe"):
        from omiga_pl.envs.pettingzoo_in import PettingZooVecEnv, mpe2_id

        # "mpe" is OMAR's name for the particle tasks: the same env through mpe2.
        env_id = mpe2_id(scenario) if family == "mpe" else scenario
        return PettingZooVecEnv(env_id, num_envs=num_envs, **kwargs)
    if family == "smac":
        from omiga_pl.envs.smac import SMACVecEnv

        return SMACVecEnv(scenario, num_envs=num_envs, **kwargs)
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
    if family in ("pettingzoo", "mpe"):
        from omiga_pl.envs.pettingzoo_in import mpe2_id, pettingzoo_spec

        return pettingzoo_spec(mpe2_id(scenario) if family == "mpe" else scenario, **kwargs)
    if family == "smac":
        from omiga_pl.envs.smac import smac_spec

        return smac_spec(scenario, **kwargs)
    raise ConfigError(f"env.family: expected one of {list(FAMILIES)}, found '{family}'")
