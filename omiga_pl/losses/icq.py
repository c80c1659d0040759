"""ICQ's losses (Yang et al., NeurIPS 2021, ICQ-MA) in their one-step form, as pure functions.

ICQ trains its critic only on dataset actions: the next value is the mixed target Q at the
*next dataset action*, reweighted by a softmax over the batch (the batch estimate of
``exp(Q/beta) / E_mu[exp(Q/beta)]``), so no out-of-distribution action is ever queried.
The actor is advantage-weighted behaviour cloning with the same kind of batch softmax.
The published method builds TD(lambda) targets over whole episodes; our batches are
transitions, so :func:`icq_critic_target` is the one-step target. :func:`icq_losses`
takes the targets as an input: a lambda-return version over sequence batches replaces
that one function and nothing else. See docs/algorithms/icq.md.

Shapes: B = batch, N = agents. Per-agent quantities are [B, N]; per-transition [B].
"""

from __future__ import annotations

import torch

from omiga_pl.losses.common import NamedLosses, mse, td_target

# Floor of the credit normaliser (the sum of non-negative mixer slopes over agents).
CREDIT_EPS = 1e-12


def batch_softmax_weights(values: torch.Tensor, beta: float) -> torch.Tensor:
    """``B * softmax_b(values_b / beta)`` over the batch dimension (dim 0), detached.

    values [B] or [B, N] (each agent's column normalised separately) -> same shape; the
    weights average 1 over the batch. ICQ's estimate of ``exp(x / beta) / E[exp(x / beta)]``
    with the expectation over the batch (ICQ-MA's ``len(adv) * softmax(adv / beta, dim=0)``).
    """
    values = values.detach()
    return values.shape[0] * torch.softmax(values / beta, dim=0)


def icq_critic_target(
    rewards: torch.Tensor,
    masks: torch.Tensor,
    next_q_total_target: torch.Tensor,
    gamma: float,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-step implicit-constraint target and its in-sample weights, both [B], detached.

    ``y = r + gamma * mask * B softmax_b(Qt_tot(s', a') / beta) * Qt_tot(s', a')``, with
    ``Qt_tot(s', a')`` [B] the target networks' mixed Q at the next state and the next
    *dataset* joint action. (ICQ-MA applies the same weighting to every step's value
    before its TD(lambda) recursion; this is the recursion cut after one step.)
    """
    weights = batch_softmax_weights(next_q_total_target, beta)
    return td_target(rewards, masks, weights * next_q_total_target, gamma), weights


def credit_shares(slopes: torch.Tensor) -> torch.Tensor:
    """Each agent's share of the team's credit, ``k_i / sum_j k_j``: [B, N] -> [B, N], detached.

    ``slopes`` are ``dQ_tot / dQ_i`` (>= 0 for a monotone mixer; the linear mixer's
    weights ``w_i(s)``); ICQ-MA's ``QMixer.k`` normalises its linear weights the same way.
    """
    slopes = slopes.detach()
    return slopes / slopes.sum(-1, keepdim=True).clamp_min(CREDIT_EPS)


def expected_q(probs: torch.Tensor, q_all: torch.Tensor) -> torch.Tensor:
    """``sum_a pi(a | o_i) Q_i(o_i, a)``, ICQ-MA's (COMA-style) baseline: [B, N, A] x2 -> [B, N]."""
    return (probs.detach() * q_all.detach()).sum(-1)


def icq_losses(
    *,
    q_total: torch.Tensor,
    targets: torch.Tensor,
    log_probs: torch.Tensor,
    advantages: torch.Tensor,
    credit: torch.Tensor,
    actor_beta: float,
) -> NamedLosses:
    """ICQ's critic (group ``q``) and actor (group ``policy``) losses.

    Args:
        q_total: online mixed Q at the dataset actions, [B] (gradient to local Q + mixer).
        targets: critic targets [B] (e.g. :func:`icq_critic_target`), detached here.
        log_probs: log pi_i(a_i | o_i) of the dataset actions, [B, N].
        advantages: what the actor's batch softmax weighs, [B, N], detached here
            (discrete: ``Q_i(o_i, a_i) - sum_a pi Q_i``; continuous: ``w_i(s) Q_i(o_i, a_i)``).
        credit: per-agent factor outside the softmax, [B, N], detached here (discrete:
            :func:`credit_shares`; continuous: ones).
        actor_beta: the actor's softmax temperature.

    critic = ``mean_b (Q_tot - y)^2``; actor = ``- mean_{b,i} credit_i B softmax_b(A_i / beta) log pi_i``.
    """
    targets = targets.detach()
    critic_loss = mse(q_total, targets)
    softmax_weights = batch_softmax_weights(advantages, actor_beta)
    policy_weights = credit.detach() * softmax_weights
    policy_loss = -(policy_weights * log_probs).mean()
    with torch.no_grad():
        diagnostics = {
            "q_total_mean": q_total.mean(),
            "td_target_mean": targets.mean(),
            "advantage_mean": advantages.mean(),
            "policy_weight_max": softmax_weights.max(),
            "credit_min": credit.min(),
            "log_prob_mean": log_probs.mean(),
        }
    return NamedLosses({"q": critic_loss, "policy": policy_loss}, diagnostics)
