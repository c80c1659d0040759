"""BCQ-MA's losses: batch-constrained Q-learning per agent, mixed into a team value.

Discrete (Fujimoto et al. 2019, "Benchmarking batch deep RL algorithms"): a behaviour
model keeps only actions whose probability relative to the most likely available one
exceeds a threshold; the TD target evaluates the target Q at the online Q's best kept
action. Continuous (Fujimoto et al. 2019, "Off-policy deep RL without exploration"): a
conditional VAE of the data's actions, a bounded perturbation actor and twin critics with
a soft clipped double-Q target. Pure functions: tensors in, NamedLosses out; the nets and
the mixer are applied by ``omiga_pl/algos/bcq.py``.

Shapes: B = batch, N = agents, A = actions (discrete: count; continuous: size), K =
sampled candidate actions, L = latent size. Per-agent quantities are [B, N]; per
transition [B].
"""

from __future__ import annotations

import torch

from omiga_pl.losses.common import NamedLosses, mse, td_target
from omiga_pl.nets.policy import MASKED_LOGIT


def bcq_allowed_actions(
    logits: torch.Tensor, avail_actions: torch.Tensor | None, threshold: float
) -> torch.Tensor:
    """Discrete BCQ's filter: ``pi_b(a|o) / max_{a' available} pi_b(a'|o) > threshold``
    and ``a`` available. logits [..., A], avail_actions [..., A] bool or None -> [..., A] bool.

    The softmax normaliser cancels in the ratio, so it is ``exp(l_a - max_avail l)``. The
    most likely available action has ratio 1, so for ``threshold < 1`` at least one action
    is always kept.
    """
    if avail_actions is not None:
        logits = logits.masked_fill(~avail_actions, MASKED_LOGIT)
    ratio = torch.exp(logits - logits.max(dim=-1, keepdim=True).values)
    allowed = ratio > threshold
    return allowed if avail_actions is None else allowed & avail_actions


def filtered_argmax(q_values: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Best allowed action by ``q_values``: [..., A] float, [..., A] bool -> [...] int64."""
    return q_values.masked_fill(~allowed, float("-inf")).argmax(dim=-1)


def behaviour_log_probs(
    logits: torch.Tensor, actions: torch.Tensor, avail_actions: torch.Tensor | None = None
) -> torch.Tensor:
    """log pi_b(a_i | o_i) of the dataset actions: logits [B, N, A], actions [B, N] -> [B, N];
    over the available actions only when ``avail_actions`` is given."""
    if avail_actions is not None:
        logits = logits.masked_fill(~avail_actions, MASKED_LOGIT)
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def bcq_discrete_losses(
    *,
    q_total: torch.Tensor,
    next_total_target: torch.Tensor,
    rewards: torch.Tensor,
    masks: torch.Tensor,
    gamma: float,
    log_probs: torch.Tensor,
    logits: torch.Tensor,
    logit_reg: float,
) -> NamedLosses:
    """Discrete BCQ-MA's two losses.

    Args:
        q_total: online mixer of the online local Q at the dataset actions, at s: [B].
        next_total_target: target mixer of the target local Q at the filtered argmax of
            the online local Q at o', at s': [B] (treated as constant).
        rewards, masks: team reward and 1 - termination, [B].
        log_probs: behaviour model's log pi_b(a_i | o_i) of the dataset actions, [B, N].
        logits: the behaviour model's raw logits at o, [B, N, A] (for the logit penalty).
        logit_reg: weight of the mean squared logit (Fujimoto et al.'s 1e-2 keeps the
            logits, and so the probability ratios, from drifting).

    Returns ``q``: ``mean (Q_tot - y)^2`` with ``y = r + gamma mask next_total_target``;
    ``behaviour``: ``-mean log pi_b(a|o) + logit_reg mean logits^2``.
    """
    y = td_target(rewards, masks, next_total_target, gamma)
    q_loss = mse(q_total, y)
    behaviour_loss = -log_probs.mean() + logit_reg * logits.float().pow(2).mean()
    with torch.no_grad():
        diagnostics = {
            "q_total_mean": q_total.mean(),
            "td_target_mean": y.mean(),
            "behaviour_log_prob_mean": log_probs.mean(),
        }
    return NamedLosses({"q": q_loss, "behaviour": behaviour_loss}, diagnostics)


def soft_clipped_double_q(q1: torch.Tensor, q2: torch.Tensor, lmbda: float) -> torch.Tensor:
    """BCQ's target mix of twin critics: ``lmbda min(q1, q2) + (1 - lmbda) max(q1, q2)``."""
    return lmbda * torch.minimum(q1, q2) + (1.0 - lmbda) * torch.maximum(q1, q2)


def vae_loss(
    reconstruction: torch.Tensor, actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BCQ's VAE loss ``recon + 0.5 KL``, and its two terms.

    ``recon = mean (a_hat - a)^2`` over [B, N, A]; ``KL = -0.5 mean(1 + log std^2 - mu^2 -
    std^2)`` over [B, N, L] (a per-element mean, as the BCQ authors compute it).
    """
    recon = ((reconstruction - actions) ** 2).mean()
    kl = -0.5 * (1.0 + 2.0 * log_std - mean.pow(2) - (2.0 * log_std).exp()).mean()
    return recon + 0.5 * kl, recon, kl


def bcq_continuous_losses(
    *,
    q1_total: torch.Tensor,
    q2_total: torch.Tensor,
    next_total_target: torch.Tensor,
    rewards: torch.Tensor,
    masks: torch.Tensor,
    gamma: float,
    actor_q: torch.Tensor,
    reconstruction: torch.Tensor,
    actions: torch.Tensor,
    latent_mean: torch.Tensor,
    latent_log_std: torch.Tensor,
) -> NamedLosses:
    """Continuous BCQ-MA's three losses.

    Args:
        q1_total, q2_total: the online mixer of each twin local critic at the dataset
            actions, at s: [B].
        next_total_target: target mixer at s' of the per-agent best sampled target value
            ``max_k soft_clipped_double_q(Q1t_i, Q2t_i)(o'_i, a'_ik)``: [B] (constant).
        actor_q: the first critic (parameters detached) at the perturbed VAE samples,
            ``Q1_i(o_i, xi(o_i, a_vae))``: [B, N]; its gradient reaches only the actor.
        reconstruction, actions: the VAE's reconstruction and the dataset actions, [B, N, A].
        latent_mean, latent_log_std: the VAE posterior, [B, N, L].

    Returns ``q``: ``mean (Q1_tot - y)^2 + mean (Q2_tot - y)^2``; ``actor``:
    ``-mean Q1_i(o_i, xi(o_i, a_vae))``; ``vae``: ``recon + 0.5 KL``.
    """
    y = td_target(rewards, masks, next_total_target, gamma)
    q_loss = mse(q1_total, y) + mse(q2_total, y)
    actor_loss = -actor_q.mean()
    vae, recon, kl = vae_loss(reconstruction, actions, latent_mean, latent_log_std)
    with torch.no_grad():
        diagnostics = {
            "q_total_mean": q1_total.mean(),
            "td_target_mean": y.mean(),
            "actor_q_mean": actor_q.mean(),
            "vae_recon": recon.detach(),
            "vae_kl": kl.detach(),
        }
    return NamedLosses({"q": q_loss, "actor": actor_loss, "vae": vae}, diagnostics)
