"""Deterministic per-agent actors and twin per-agent critics (TD3-style actor-critic nets)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from omiga_pl.nets.agent import AgentMLP


class DeterministicPolicy(nn.Module):
    """Shared per-agent deterministic actor ``a_i = tanh(f(o_i, id_i))`` in [-1, 1].

    forward / act: observations [..., N, O] -> actions [..., N, A]. The last layer's
    weights start uniform in ``[-last_init, last_init]`` (DDPG/TD3's small output init,
    kept by the OMAR authors' ``MLPNetwork(constrain_out=True)``) so that early actions do
    not saturate the tanh.
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        last_init: float = 3e-3,
    ) -> None:
        super().__init__()
        self.net = AgentMLP(n_agents, obs_dim, hidden_sizes, action_dim)
        if last_init > 0:
            nn.init.uniform_(self.net.net[-1].weight, -last_init, last_init)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(observations))

    @torch.no_grad()
    def act(self, observations: torch.Tensor, avail_actions: torch.Tensor | None = None) -> torch.Tensor:
        """The action itself (deterministic); ``avail_actions`` is ignored (continuous)."""
        return self(observations)


class TwinQ(nn.Module):
    """Two independent shared per-agent critics (TD3's clipped double Q).

    forward: inputs [..., N, D] -> (q1, q2), each [..., N, out_dim]. ``q1`` alone is the
    critic the actor climbs (TD3's convention).
    """

    def __init__(self, n_agents: int, in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> None:
        super().__init__()
        self.q1 = AgentMLP(n_agents, in_dim, hidden_sizes, out_dim)
        self.q2 = AgentMLP(n_agents, in_dim, hidden_sizes, out_dim)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.q1(inputs), self.q2(inputs)
