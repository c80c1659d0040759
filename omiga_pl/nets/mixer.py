"""Value-decomposition mixers: per-agent values [B, N] and the state [B, S] -> team value [B].

Every mixer has ``mix(values, states) -> [B]``. The linear mixer also exposes its weights
(OMIGA needs them per agent): ``Q_tot = sum_i w_i(s) Q_i + b(s)``, ``w >= 0``.
"""

from __future__ import annotations

import torch
from torch import nn

MIXER_KINDS: tuple[str, ...] = ("linear",)


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

    def mix(self, values: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``sum_i w_i(s) values_i + b(s)``: values [B, N], states [B, S] -> [B]."""
        weights, bias = self(states)
        return (weights * values).sum(-1) + bias


def build_mixer(kind: str, state_dim: int, n_agents: int, hidden: int) -> nn.Module:
    """A mixer of ``kind`` (one of :data:`MIXER_KINDS`)."""
    if kind == "linear":
        return Mixer(state_dim, n_agents, hidden)
    raise ValueError(f"unknown mixer kind '{kind}', expected one of {list(MIXER_KINDS)}")
