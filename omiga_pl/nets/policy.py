"""Policies: log-probabilities of dataset actions for training, greedy actions for acting."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from omiga_pl.nets.agent import AgentMLP

# The reference masks unavailable actions by setting their logits to -1e8.
MASKED_LOGIT = -1e8


class CategoricalPolicy(nn.Module):
    """Shared per-agent categorical policy over ``n_actions`` logits.

    logits: observations [B, N, O] -> [B, N, A].
    """

    def __init__(self, n_agents: int, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.logits_net = AgentMLP(n_agents, obs_dim, hidden_sizes, n_actions)

    def logits(self, observations: torch.Tensor, avail_actions: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.logits_net(observations)
        if avail_actions is not None:
            logits = logits.masked_fill(~avail_actions, MASKED_LOGIT)
        return logits

    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor, avail_actions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(a | o) of ``actions`` [B, N] and the policy entropy, both [B, N]."""
        log_probs = torch.log_softmax(self.logits(observations, avail_actions).float(), dim=-1)
        taken = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return taken, entropy

    @torch.no_grad()
    def act(self, observations: torch.Tensor, avail_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Greedy action over available actions: [B, N] int64."""
        return self.logits(observations, avail_actions).argmax(-1)
