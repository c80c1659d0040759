"""Environment adapters behind one small vectorised multi-agent interface."""

from omiga_pl.envs.base import EnvSpec, StepResult, VecMultiAgentEnv

__all__ = ["EnvSpec", "StepResult", "VecMultiAgentEnv", "make_env"]


def make_env(family: str, scenario: str, num_envs: int, **kwargs) -> VecMultiAgentEnv:
    """Build a vectorised env by family name (``smax``) and scenario (``3m``)."""
    if family == "smax":
        from omiga_pl.envs.smax import SMAXVecEnv

        return SMAXVecEnv(scenario, num_envs=num_envs, **kwargs)
    from omiga_pl.errors import ConfigError

    raise ConfigError(f"env.family: expected one of ['smax'], found '{family}'")
