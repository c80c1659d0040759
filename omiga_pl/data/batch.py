"""The Batch: every tensor one update needs, shapes documented once.

B = batch size, N = agents, O = obs_dim, S = state_dim, A = actions (discrete: count;
continuous: per-agent action size).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """One batch of transitions ``(o, s, a, r, o', s')`` with availability and mask.

    observations / next_observations: [B, N, O] float
    states / next_states:             [B, S] float (global state, or concatenated obs)
    actions:                          [B, N] int64 (discrete) or [B, N, A] float (continuous)
    avail_actions / next_avail_actions: [B, N, A] bool, or None (continuous / not stored)
    rewards:                          [B] float, team reward
    masks:                            [B] float, 0 at true terminals, 1 otherwise
                                      (time-limit truncations bootstrap)
    next_actions:                     like actions: the dataset action at the next step of
                                      the same episode (for in-sample, SARSA-style targets);
                                      at an episode's last transition, where no next action
                                      exists, the transition's own action (it matters only
                                      under mask = 1, a time-limit truncation). None when
                                      not gathered.
    """

    observations: torch.Tensor
    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    masks: torch.Tensor
    next_observations: torch.Tensor
    next_states: torch.Tensor
    avail_actions: torch.Tensor | None = None
    next_avail_actions: torch.Tensor | None = None
    next_actions: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.rewards.shape[0])
