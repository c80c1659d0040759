"""Policies: log-probabilities of dataset actions for training, greedy actions for acting."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from omiga_pl.nets.agent import AgentMLP, hidden_stack, with_agent_ids

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


# Tanh-squashed Gaussian constants of the reference (omiga-spec.md, "Policy").
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
MEAN_CLAMP = 9.0
# Dataset actions are clipped to (-1 + eps, 1 - eps) before atanh so that a saturated
# action (exactly +-1) still has a finite log-probability.
ACTION_EPS = 1e-7
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def tanh_log_det_jacobian(pre_tanh: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(u)^2)`` elementwise, in the stable form ``2 (log 2 - u - softplus(-2u))``."""
    return 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))


def tanh_gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor, eps: float = ACTION_EPS
) -> torch.Tensor:
    """log-density of squashed actions under ``tanh(Normal(mean, exp(log_std)))``.

    ``mean``, ``log_std``, ``actions``: [..., A] -> [...] (summed over action dims).
    Actions are clipped to (-1 + eps, 1 - eps), inverted with atanh, and the Gaussian
    log-density of the pre-image is corrected by the tanh Jacobian.
    """
    clipped = actions.clamp(-1.0 + eps, 1.0 - eps)
    pre_tanh = torch.atanh(clipped)
    normal = -0.5 * ((pre_tanh - mean) * torch.exp(-log_std)) ** 2 - log_std - _HALF_LOG_2PI
    return (normal - tanh_log_det_jacobian(pre_tanh)).sum(-1)


def tanh_gaussian_sample(
    mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised sample of ``tanh(Normal(mean, exp(log_std)))`` and its log-density.

    ``mean``, ``log_std``: [..., A]; ``noise``: standard normal, [..., A] or with extra
    leading sample dims [K, ..., A] (the caller draws it, from its own generator, so that
    sampling is reproducible). Returns actions like ``noise`` and log-probs without the
    last dim. The log-density is computed from the pre-tanh value (no atanh round trip);
    gradients flow to ``mean`` and ``log_std``.
    """
    pre_tanh = mean + log_std.exp() * noise
    normal = -0.5 * noise**2 - log_std - _HALF_LOG_2PI
    return torch.tanh(pre_tanh), (normal - tanh_log_det_jacobian(pre_tanh)).sum(-1)


class TanhGaussianPolicy(nn.Module):
    """Shared per-agent tanh-squashed Gaussian: trunk MLP (one-hot id appended), two heads.

    ``mean_and_log_std``: observations [B, N, O] -> mean, log_std [B, N, A], clamped to
    [-9, 9] and [-5, 2]. Deterministic action: ``tanh(mean)``. Dataset actions are
    clipped to (-1 + ``action_eps``, 1 - ``action_eps``) for their log-probability.
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        action_eps: float = ACTION_EPS,
    ) -> None:
        super().__init__()
        self.action_eps = action_eps
        self.trunk = hidden_stack(obs_dim + n_agents, hidden_sizes)
        in_dim = hidden_sizes[-1] if hidden_sizes else obs_dim + n_agents
        self.mean_head = nn.Linear(in_dim, action_dim)
        self.log_std_head = nn.Linear(in_dim, action_dim)
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)

    def mean_and_log_std(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(with_agent_ids(observations, self.agent_ids))
        mean = self.mean_head(h).clamp(-MEAN_CLAMP, MEAN_CLAMP)
        log_std = self.log_std_head(h).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std

    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor, avail_actions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(a | o) of dataset ``actions`` [B, N, A] -> [B, N], and the entropy of the
        pre-tanh Gaussian [B, N] (a diagnostic: the squashed entropy has no closed form).
        ``avail_actions`` is ignored (continuous actions are always available)."""
        mean, log_std = self.mean_and_log_std(observations)
        log_probs = tanh_gaussian_log_prob(mean.float(), log_std.float(), actions.float(), self.action_eps)
        entropy = (log_std.float() + 0.5 + _HALF_LOG_2PI).sum(-1)
        return log_probs, entropy

    @torch.no_grad()
    def act(self, observations: torch.Tensor, avail_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic action ``tanh(clamp(mean))``: [B, N, A]."""
        return torch.tanh(self.mean_and_log_std(observations)[0])
