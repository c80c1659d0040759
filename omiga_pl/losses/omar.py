"""OMAR's losses (Pan et al., ICML 2022): pure functions, tensors in, tensors out.

Independent per-agent critics (no mixer): every agent's twin critic regresses on the team
reward, ``y_i = r + gamma mask min(Q1'_i, Q2'_i)(o'_i, pi'_i(o'_i))``, plus a CQL(H)
penalty. The actor mixes a regression toward the best action a zeroth-order (cross-entropy
method) search finds with the policy-gradient term ``-Q1(o, pi(o))``. Maths checked
against the authors' ``algorithms/maddpg.py`` (ling-pan/OMAR, MaMuJoCo branch of
``MATD3.update``); see docs/algorithms/omar.md.

Shapes: B batch, N agents, A action size (or count), K sampled actions, S search samples
per iteration, I search iterations, E elites.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from omiga_pl.losses.common import (
    NamedLosses,
    conservative_penalty_discrete,
    conservative_penalty_sampled,
    mse,
    td_target,
)

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def twin_td_target(
    rewards: torch.Tensor,
    masks: torch.Tensor,
    next_q1: torch.Tensor,
    next_q2: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Clipped double-Q target per agent, the team reward for every agent:
    ``y_i = r + gamma mask min(Q1'_i, Q2'_i)``. rewards, masks [B]; next_q* [B, N] -> [B, N]."""
    return td_target(rewards.unsqueeze(-1), masks.unsqueeze(-1), torch.minimum(next_q1, next_q2), gamma)


def cql_proposal_actions(
    policy_actions: torch.Tensor,
    next_policy_actions: torch.Tensor,
    uniform: torch.Tensor,
    normal: torch.Tensor,
    noise_std: float,
    max_action: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The actions CQL's penalty samples, with their log-densities (authors' MaMuJoCo code):
    K uniform actions in [-1, 1]^A, and K noisy copies each of ``pi(o)`` and ``pi(o')``
    (``pi + noise_std * z``, clipped), all to be evaluated at ``o``.

    policy_actions, next_policy_actions [B, N, A]; uniform [B, K, N, A] in [-1, 1];
    normal [B, 2K, N, A] standard normal -> actions [B, 3K, N, A], log_density [B, 3K, N].
    The Gaussian density is the noise's (before clipping), as in CQL's reference.
    """
    k = uniform.shape[1]
    centres = torch.cat(
        [
            policy_actions.unsqueeze(1).expand(-1, k, -1, -1),
            next_policy_actions.unsqueeze(1).expand(-1, k, -1, -1),
        ],
        dim=1,
    )
    noisy = (centres + noise_std * normal).clamp(-max_action, max_action)
    action_dim = uniform.shape[-1]
    uniform_log_density = uniform.new_full(uniform.shape[:-1], action_dim * math.log(0.5 / max_action))
    normal_log_density = (-0.5 * normal**2 - math.log(noise_std) - _HALF_LOG_2PI).sum(-1)
    return torch.cat([uniform, noisy], dim=1), torch.cat([uniform_log_density, normal_log_density], dim=1)


def critic_loss(
    q1_taken: torch.Tensor,
    q2_taken: torch.Tensor,
    target: torch.Tensor,
    penalty1: torch.Tensor,
    penalty2: torch.Tensor,
    cql_alpha: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``mse(Q1, y) + mse(Q2, y) + cql_alpha (mean(penalty1) + mean(penalty2))``, all [B, N]."""
    td = mse(q1_taken, target) + mse(q2_taken, target)
    penalty = penalty1.mean() + penalty2.mean()
    diagnostics = {
        "td_loss": td.detach(),
        "cql_penalty": penalty.detach(),
        "q_taken_mean": q1_taken.detach().mean(),
        "td_target_mean": target.mean(),
    }
    return td + cql_alpha * penalty, diagnostics


def zeroth_order_search(
    q_fn: Callable[[torch.Tensor], torch.Tensor],
    normal: torch.Tensor,
    mu: torch.Tensor,
    sigma: torch.Tensor,
    n_elites: int,
    max_action: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """OMAR's cross-entropy-method search for a high-Q action per agent (authors' MaMuJoCo form).

    Iteration i samples ``clip(mu + sigma * normal[i])``, scores the samples with ``q_fn``,
    adds the previous iteration's elites (with their scores) to the pool, keeps the
    ``n_elites`` best and refits ``mu, sigma`` to their mean and (unbiased) std. Returns the
    best action seen and its Q.

    q_fn: actions [B, S, N, A] -> Q [B, S, N]; normal [I, B, S, N, A]; mu, sigma [B, N, A]
    -> best actions [B, N, A], best Q [B, N].
    """
    elite_actions = elite_q = None
    for noise in normal:
        samples = (mu.unsqueeze(1) + sigma.unsqueeze(1) * noise).clamp(-max_action, max_action)
        scores = q_fn(samples)
        if elite_actions is not None:
            samples = torch.cat([samples, elite_actions], dim=1)
            scores = torch.cat([scores, elite_q], dim=1)
        elite_q, index = scores.topk(n_elites, dim=1)
        elite_actions = samples.gather(1, index.unsqueeze(-1).expand(-1, -1, -1, samples.shape[-1]))
        mu, sigma = elite_actions.mean(1), elite_actions.std(1)
    assert elite_actions is not None and elite_q is not None, "at least one search iteration"
    # topk sorts in descending order: elite 0 is the best of everything sampled.
    return elite_actions[:, 0], elite_q[:, 0]


def mimic_actions(
    policy_actions: torch.Tensor, policy_q: torch.Tensor, search_actions: torch.Tensor, search_q: torch.Tensor
) -> torch.Tensor:
    """The actor's regression target: the search's action where its Q beats the policy's,
    else the policy's own action (ties keep the policy's, as ``torch.max`` over
    ``[policy, search]`` in the authors' code). actions [B, N, A], Q [B, N] -> [B, N, A], detached."""
    better = (search_q > policy_q).unsqueeze(-1)
    return torch.where(better, search_actions, policy_actions).detach()


def actor_loss_continuous(
    policy_actions: torch.Tensor,
    policy_q: torch.Tensor,
    targets: torch.Tensor,
    omar_coe: float,
    action_l2: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``coe mean((pi - a*)^2) - (1 - coe) mean(Q1(o, pi)) + action_l2 mean(pi^2)``.

    policy_actions [B, N, A] (gradient to the actor), policy_q [B, N] (the critic detached,
    gradient to the actions only), targets [B, N, A] (detached)."""
    mimic = mse(policy_actions, targets.detach())
    q_mean = policy_q.mean()
    loss = omar_coe * mimic - (1.0 - omar_coe) * q_mean + action_l2 * (policy_actions**2).mean()
    return loss, {"mimic_loss": mimic.detach(), "policy_q_mean": q_mean.detach()}


def actor_loss_discrete(
    logits: torch.Tensor,
    q_values: torch.Tensor,
    avail_actions: torch.Tensor | None,
    omar_coe: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Discrete OMAR (OffPyMARL's ``omar_learner``, exact forms): the search is exact, the
    best available action ``a* = argmax_a Q1(o, a)``; the actor minimises
    ``coe CE(logits, a*) - (1 - coe) mean(sum_a pi(a | o) Q1(o, a))``.

    logits [B, N, A] (unavailable actions already masked), q_values [B, N, A] (detached
    here), avail_actions [B, N, A] bool or None."""
    q_values = q_values.detach()
    masked_q = q_values if avail_actions is None else q_values.masked_fill(~avail_actions, float("-inf"))
    best = masked_q.argmax(-1)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    mimic = F.nll_loss(log_probs.flatten(0, -2), best.flatten())
    expected_q = (log_probs.exp() * q_values).sum(-1).mean()
    loss = omar_coe * mimic - (1.0 - omar_coe) * expected_q
    agree = (logits.argmax(-1) == best).float().mean()
    return loss, {"mimic_loss": mimic.detach(), "policy_q_mean": expected_q.detach(), "greedy_agrees": agree}


def omar_losses_continuous(
    q1_taken: torch.Tensor,
    q2_taken: torch.Tensor,
    q1_samples: torch.Tensor,
    q2_samples: torch.Tensor,
    log_density: torch.Tensor,
    next_q1_target: torch.Tensor,
    next_q2_target: torch.Tensor,
    rewards: torch.Tensor,
    masks: torch.Tensor,
    policy_actions: torch.Tensor,
    policy_q: torch.Tensor,
    targets: torch.Tensor,
    gamma: float,
    cql_alpha: float,
    cql_temperature: float,
    omar_coe: float,
    action_l2: float,
) -> NamedLosses:
    """Both named losses, continuous actions.

    q*_taken [B, N] at dataset actions; q*_samples, log_density [B, N, K] at CQL's sampled
    actions; next_q*_target [B, N] at the target actor's next actions; rewards, masks [B];
    policy_actions [B, N, A], policy_q [B, N] (critic detached), targets [B, N, A].
    """
    target = twin_td_target(rewards, masks, next_q1_target, next_q2_target, gamma)
    penalty1 = conservative_penalty_sampled(q1_samples, log_density, q1_taken, cql_temperature)
    penalty2 = conservative_penalty_sampled(q2_samples, log_density, q2_taken, cql_temperature)
    q_loss, q_diagnostics = critic_loss(q1_taken, q2_taken, target, penalty1, penalty2, cql_alpha)
    policy_loss, policy_diagnostics = actor_loss_continuous(
        policy_actions, policy_q, targets, omar_coe, action_l2
    )
    return NamedLosses({"q": q_loss, "policy": policy_loss}, {**q_diagnostics, **policy_diagnostics})


def omar_losses_discrete(
    q1_all: torch.Tensor,
    q2_all: torch.Tensor,
    actions: torch.Tensor,
    next_q1_target: torch.Tensor,
    next_q2_target: torch.Tensor,
    rewards: torch.Tensor,
    masks: torch.Tensor,
    logits: torch.Tensor,
    avail_actions: torch.Tensor | None,
    gamma: float,
    cql_alpha: float,
    omar_coe: float,
) -> NamedLosses:
    """Both named losses, discrete actions.

    q*_all [B, N, A]; actions [B, N] dataset actions; next_q*_target [B, N] at the target
    actor's greedy available next action; logits [B, N, A] masked; avail_actions [B, N, A]
    bool or None (the CQL logsumexp and the actor's targets run over available actions).
    """
    q1_taken = q1_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    q2_taken = q2_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    target = twin_td_target(rewards, masks, next_q1_target, next_q2_target, gamma)
    penalty1 = conservative_penalty_discrete(q1_all, q1_taken, avail_actions)
    penalty2 = conservative_penalty_discrete(q2_all, q2_taken, avail_actions)
    q_loss, q_diagnostics = critic_loss(q1_taken, q2_taken, target, penalty1, penalty2, cql_alpha)
    policy_loss, policy_diagnostics = actor_loss_discrete(logits, q1_all, avail_actions, omar_coe)
    return NamedLosses({"q": q_loss, "policy": policy_loss}, {**q_diagnostics, **policy_diagnostics})
