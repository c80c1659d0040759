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
