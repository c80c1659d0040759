"""Per-agent networks whose parameters are shared by all agents."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> nn.Sequential:
    """Linear-ReLU stack ending in a linear layer (PyTorch's default init)."""
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [nn.Linear(in_dim, size), nn.ReLU()]
        in_dim = size
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class AgentMLP(nn.Module):
    """One MLP applied to every agent, its input extended by a one-hot agent id.

    forward: inputs [B, N, D] -> [B, N, out_dim].
    """

    def __init__(self, n_agents: int, in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.net = mlp(in_dim + n_agents, hidden_sizes, out_dim)
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        ids = self.agent_ids.to(inputs.dtype).expand(*inputs.shape[:-2], -1, -1)
        return self.net(torch.cat([inputs, ids], dim=-1))
