"""The problem sizes every layer agrees on, declared once.

A dataset (``EpisodeDataset``), its in-memory storage (``TransitionStorage``), an
environment (``EnvSpec``) and an algorithm's networks all describe the same five numbers;
they all carry a :class:`ProblemDims` instead of repeating them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

ActionType = Literal["discrete", "continuous"]
ACTION_TYPES: tuple[str, ...] = ("discrete", "continuous")


@dataclass(frozen=True)
class ProblemDims:
    """Sizes the networks are built for.

    ``action_dim`` is the number of discrete actions per agent, or the size of one agent's
    continuous action vector; ``state_dim`` is the global state's size (the concatenated
    observations when a dataset has no separate state).
    """

    n_agents: int
    obs_dim: int
    state_dim: int
    action_type: str
    action_dim: int

    def as_dict(self) -> dict:
        return asdict(self)
