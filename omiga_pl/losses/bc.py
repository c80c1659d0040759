"""Behaviour cloning losses: maximum likelihood, and (continuous) mean squared error of the
deterministic action. Shapes: B = batch, N = agents, A = action size."""

from __future__ import annotations

import torch

from omiga_pl.losses.common import NamedLosses


def bc_nll_loss(log_probs: torch.Tensor) -> NamedLosses:
    """``-mean_{b,i} log pi_i(a_i | o_i)`` of dataset actions; ``log_probs`` [B, N]."""
    loss = -log_probs.mean()
    return NamedLosses({"policy": loss}, {"log_prob_mean": log_probs.detach().mean()})


def bc_mse_loss(actions_pred: torch.Tensor, actions: torch.Tensor) -> NamedLosses:
    """``mean_{b,i,k} (mu_i(o_i)_k - a_ik)^2`` of the deterministic action [B, N, A]."""
    loss = ((actions_pred - actions) ** 2).mean()
    return NamedLosses({"policy": loss}, {"action_abs_error": (actions_pred - actions).detach().abs().mean()})
