"""The one environment interface that evaluation and dataset generation share.

An adapter runs ``num_envs`` episodes side by side. ``reset`` starts a fresh episode in
every slot; ``step`` advances them all. A slot whose episode has ended stays frozen
(same observation, zero reward, done flags kept) until the next ``reset``, so a caller
simply steps until ``(terminated | truncated).all()``.

Shapes use E = num_envs, N = agents, O = obs_dim, S = state_dim, A = action_dim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from omiga_pl.dims import ProblemDims


@dataclass(frozen=True)
class EnvSpec:
    """What a dataset must match to be trained on / evaluated in an environment.

    ``dims``: the problem sizes (agents, observation, state, action type and size), the
    same :class:`ProblemDims` a dataset and the networks carry. ``has_win_signal``:
    episodes can be won (SMAC-like battles), so evaluation reports a win rate.
    """

    family: str
    scenario: str
    dims: ProblemDims
    episode_limit: int
    has_win_signal: bool = False

    def as_dict(self) -> dict:
        """Flat: family, scenario, the five sizes, episode_limit, has_win_signal."""
        return {
            "family": self.family,
            "scenario": self.scenario,
            **self.dims.as_dict(),
            "episode_limit": self.episode_limit,
            "has_win_signal": self.has_win_signal,
        }


@dataclass
class StepResult:
    """Everything one reset/step returns, as NumPy arrays.

    observations [E, N, O] float32; states [E, S] float32; avail_actions [E, N, A] bool
    (None for continuous actions); rewards [E] float32 (team reward of the step that
    led here; zeros after reset); terminated / truncated / won [E] bool.
    """

    observations: np.ndarray
    states: np.ndarray
    avail_actions: np.ndarray | None
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    won: np.ndarray

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class VecMultiAgentEnv(Protocol):
    """A batch of ``num_envs`` cooperative multi-agent episodes."""

    spec: EnvSpec
    num_envs: int

    def reset(self, seed: int) -> StepResult:
        """Start a new episode in every slot; deterministic given ``seed``."""
        ...

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance every live slot. ``actions``: [E, N] int (discrete) or [E, N, A] float."""
        ...
