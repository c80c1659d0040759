"""The state-conditioned linear mixer: Q_tot = sum_i w_i(s) Q_i + b(s), with w >= 0."""

from __future__ import annotations

import torch
from torch import nn


class Mixer(nn.Module):
    """``h = Linear(S, H)(s)``; ``w = |Linear(H, N)(relu(h))|``; ``b = Linear(H, 1)(relu(h))``.

    forward: states [B, S] -> (w [B, N], b [B]).
    """

    def __init__(self, state_dim: int, n_agents: int, hidden: int = 64) -> None:
        super().__init__()
        self.hidden = nn.Linear(state_dim, hidden)
        self.weight_head = nn.Linear(hidden, n_agents)
        self.bias_head = nn.Linear(hidden, 1)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.hidden(states))
        return self.weight_head(h).abs(), self.bias_head(h).squeeze(-1)
