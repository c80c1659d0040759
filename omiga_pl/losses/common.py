"""Pieces shared by several algorithms' losses: the named-loss container, TD targets,
value mixing and log-probability weighting. Pure functions: tensors in, tensors out.

Shapes: B = batch, N = agents. Per-agent quantities are [B, N]; per-transition [B].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class NamedLosses:
    """Scalar losses keyed by the parameter group each one trains, plus detached diagnostics.

    The algorithm base backpropagates ``total`` once: every loss must reach only the
    parameters of its own group (cross-terms detached), which a contract test checks for
    every registered algorithm.
    """

    named: dict[str, torch.Tensor]
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def total(self) -> torch.Tensor:
        return sum(self.named.values())  # type: ignore[return-value]


def mix(weights: torch.Tensor, values: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Linear value decomposition ``sum_i w_i v_i + b``: weights/values [B, N], bias [B] -> [B]."""
    return (weights * values).sum(-1) + bias


def td_target(
    rewards: torch.Tensor, masks: torch.Tensor, next_total: torch.Tensor, gamma: float
) -> torch.Tensor:
    """``y = r + gamma * mask * next_total``, detached: [B]."""
    return (rewards + gamma * masks * next_total).detach()


def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Plain mean of squared errors (no factor 1/2, as the OMIGA reference)."""
    return ((prediction - target) ** 2).mean()


def conservative_penalty_discrete(
    q_all: torch.Tensor, q_taken: torch.Tensor, avail_actions: torch.Tensor | None = None
) -> torch.Tensor:
    """CQL(H) for discrete actions (Kumar et al. 2020, eq. 4), per agent:
    ``logsumexp_a Q_i(o_i, a) - Q_i(o_i, a_i)``, over available actions when ``avail_actions``
    is given. q_all [B, N, A], q_taken [B, N], avail_actions [B, N, A] bool -> [B, N]."""
    if avail_actions is not None:
        q_all = q_all.masked_fill(~avail_actions, float("-inf"))
    return torch.logsumexp(q_all, dim=-1) - q_taken


def conservative_penalty_sampled(
    q_samples: torch.Tensor, log_density: torch.Tensor, q_taken: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """CQL(H) for continuous actions with importance-sampled actions (Kumar et al. 2020,
    appendix F): ``T logsumexp_k ((Q(o, a_k) - log mu(a_k)) / T) - Q(o, a_data)``, the
    logsumexp over K sampled actions of proposal density mu (uniform, policy, ...).
    q_samples, log_density [B, N, K]; q_taken [B, N] -> [B, N]."""
    return temperature * torch.logsumexp((q_samples - log_density) / temperature, dim=-1) - q_taken
