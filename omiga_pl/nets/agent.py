"""Per-agent networks whose parameters are shared by all agents."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def hidden_stack(in_dim: int, hidden_sizes: Sequence[int]) -> nn.Sequential:
    """Linear-ReLU layers of ``hidden_sizes`` (PyTorch's default init).

    The ReLUs work in place on their Linear's fresh output (which no backward needs):
    the same values and gradients, one allocation and one pass over memory fewer per layer.
    Feed it 2-D inputs (:func:`apply_flat`): ``nn.Linear`` returns a *view* for a 3-D
    input, and an in-place op on a view makes autograd copy the whole activation back into
    its base in the backward (``CopySlices``), which costs more than the in-place op saves.
    """
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [nn.Linear(in_dim, size), nn.ReLU(inplace=True)]
        in_dim = size
    return nn.Sequential(*layers)


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> nn.Sequential:
    """Linear-ReLU stack ending in a linear layer."""
    last = hidden_sizes[-1] if hidden_sizes else in_dim
    return nn.Sequential(*hidden_stack(in_dim, hidden_sizes), nn.Linear(last, out_dim))


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
        return apply_flat(self.net, with_agent_ids(inputs, self.agent_ids))


def apply_flat(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``net`` on the rows of ``inputs`` [..., D] folded to [R, D]; returns [..., out].

    The same matmuls as ``net(inputs)`` (``nn.Linear`` folds a 3-D input the same way),
    but every layer sees and returns a plain 2-D tensor, never a view, so the in-place
    ReLUs of :func:`hidden_stack` cost no ``CopySlices`` in the backward.
    """
    out = net(inputs.reshape(-1, inputs.shape[-1]))
    return out.reshape(*inputs.shape[:-1], out.shape[-1])


def with_agent_ids(inputs: torch.Tensor, agent_ids: torch.Tensor) -> torch.Tensor:
    """Append the one-hot agent id: inputs [..., N, D], agent_ids [N, N] -> [..., N, D + N]."""
    ids = agent_ids.to(inputs.dtype).expand(*inputs.shape[:-2], -1, -1)
    return torch.cat([inputs, ids], dim=-1)
