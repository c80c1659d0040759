"""Value-decomposition mixers: per-agent values [B, N] and the state [B, S] -> team value [B].

Every mixer has ``mix(values, states) -> [B]``, monotone in each agent's value. The
linear mixer also exposes its weights (OMIGA needs them per agent):
``Q_tot = sum_i w_i(s) Q_i + b(s)``, ``w >= 0``. QMIX's is a two-layer hypernetwork mixer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MIXER_KINDS: tuple[str, ...] = ("linear", "qmix")


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
        # In place: the fresh Linear output is not needed by any backward.
        h = torch.relu_(self.hidden(states))
        return self.weight_head(h).abs(), self.bias_head(h).squeeze(-1)

    def mix(self, values: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``sum_i w_i(s) values_i + b(s)``: values [B, N], states [B, S] -> [B]."""
        weights, bias = self(states)
        return (weights * values).sum(-1) + bias


class QMixer(nn.Module):
    """QMIX's mixer (Rashid et al. 2018; pymarl's ``QMixer`` with two hypernetwork layers).

    ``W1 = |hyper_w1(s)|`` [N, E], ``b1 = hyper_b1(s)`` [E], ``h = elu(values W1 + b1)``,
    ``W2 = |hyper_w2(s)|`` [E], ``Q_tot = h . W2 + V(s)``. Hypernetworks: Linear-ReLU-Linear
    with ``hypernet_hidden`` units; E = ``embed_dim`` (pymarl: 32 and 64).
    """

    def __init__(self, state_dim: int, n_agents: int, hypernet_hidden: int = 64, embed_dim: int = 32) -> None:
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = nn.Sequential(
            nn.Linear(state_dim, hypernet_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hypernet_hidden, embed_dim * n_agents),
        )
        self.hyper_w2 = nn.Sequential(
            nn.Linear(state_dim, hypernet_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hypernet_hidden, embed_dim),
        )
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.state_value = nn.Sequential(
            nn.Linear(state_dim, embed_dim), nn.ReLU(inplace=True), nn.Linear(embed_dim, 1)
        )

    def mix(self, values: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """values [B, N], states [B, S] -> Q_tot [B]."""
        b = values.shape[0]
        w1 = self.hyper_w1(states).abs().view(b, self.n_agents, self.embed_dim)
        hidden = F.elu(torch.bmm(values.unsqueeze(1), w1).squeeze(1) + self.hyper_b1(states))
        w2 = self.hyper_w2(states).abs()
        return (hidden * w2).sum(-1) + self.state_value(states).squeeze(-1)


def build_mixer(kind: str, state_dim: int, n_agents: int, hidden: int) -> nn.Module:
    """A mixer of ``kind`` (one of :data:`MIXER_KINDS`); ``hidden`` is the linear mixer's
    hidden layer or QMIX's hypernetwork width."""
    if kind == "linear":
        return Mixer(state_dim, n_agents, hidden)
    if kind == "qmix":
        return QMixer(state_dim, n_agents, hidden)
    raise ValueError(f"unknown mixer kind '{kind}', expected one of {list(MIXER_KINDS)}")
