"""CQL-MA's losses: conservative Q-learning on local Qs combined by a mixer; pure functions.

The critic (group ``q``: local Q + mixer) regresses the mixed Q on a one-step TD target
and adds ``cql_alpha`` times the CQL(H) penalty of every agent's local Q, summed over
agents and averaged over the batch (OffPyMARL's ``cql_type: individual``). Discrete
actions: the penalty is a logsumexp over the available actions, the target double-Q.
Continuous actions: the penalty is importance-sampled over uniform and policy actions,
and a SAC-style actor (group ``policy``) with a tuned entropy temperature (group
``entropy``) climbs the mixed Q. See docs/algorithms/cql.md.

Shapes: B = batch, N = agents, A = actions; per-agent [B, N]; per-transition [B].
"""

from __future__ import annotations

import torch

from omiga_pl.losses.common import NamedLosses, mse


def double_q_next_values(
    next_q_online: torch.Tensor, next_q_target: torch.Tensor, next_avail: torch.Tensor | None = None
) -> torch.Tensor:
    """Double-Q next values: the target local Q at the online argmax over available actions.

    next_q_online, next_q_target [B, N, A]; next_avail [B, N, A] bool or None -> [B, N], detached.
    """
    online = next_q_online.detach()
    if next_avail is not None:
        online = online.masked_fill(~next_avail, float("-inf"))
    best = online.argmax(-1, keepdim=True)
    return next_q_target.detach().gather(-1, best).squeeze(-1)


def cql_critic_loss(
    q_total: torch.Tensor, targets: torch.Tensor, penalty: torch.Tensor, cql_alpha: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``mean_b (Q_tot - y)^2 + cql_alpha * mean_b sum_i penalty_i`` and diagnostics.

    q_total [B] (online, mixed); targets [B] (detached here); penalty [B, N], the per-agent
    CQL(H) gap (``losses.common.conservative_penalty_discrete`` / ``_sampled``).
    """
    targets = targets.detach()
    td_loss = mse(q_total, targets)
    cql_loss = penalty.sum(-1).mean()
    with torch.no_grad():
        diagnostics = {
            "td_loss": td_loss.detach(),
            "cql_penalty": cql_loss.detach(),
            "q_total_mean": q_total.detach().mean(),
            "td_target_mean": targets.mean(),
        }
    return td_loss + cql_alpha * cql_loss, diagnostics


def cql_discrete_losses(
    *, q_total: torch.Tensor, targets: torch.Tensor, penalty: torch.Tensor, cql_alpha: float
) -> NamedLosses:
    """Discrete CQL-MA: one loss, the critic's (group ``q``); see :func:`cql_critic_loss`."""
    loss, diagnostics = cql_critic_loss(q_total, targets, penalty, cql_alpha)
    return NamedLosses({"q": loss}, diagnostics)


def sac_actor_loss(
    q_total_pi: torch.Tensor, log_probs_pi: torch.Tensor, entropy_alpha: torch.Tensor
) -> torch.Tensor:
    """``mean_b (alpha * sum_i log pi_i(a_i | o_i) - Q_tot(s, a))`` for ``a ~ pi`` (reparameterised).

    q_total_pi [B]: the mixed Q of the policy's actions, evaluated with the critic's
    parameters detached (gradient reaches the actions only); log_probs_pi [B, N];
    entropy_alpha: scalar temperature, detached here.
    """
    return (entropy_alpha.detach() * log_probs_pi.sum(-1) - q_total_pi).mean()


def entropy_temperature_loss(
    log_alpha: torch.Tensor, log_probs_pi: torch.Tensor, target_entropy: float
) -> torch.Tensor:
    """SAC's temperature loss ``- mean_{b,i} log_alpha (log pi_i + H_target)``, log-probs detached:
    alpha rises while an agent's policy entropy is below ``target_entropy``."""
    return -(log_alpha * (log_probs_pi.detach() + target_entropy)).mean()


def cql_continuous_losses(
    *,
    q_total: torch.Tensor,
    targets: torch.Tensor,
    penalty: torch.Tensor,
    cql_alpha: float,
    q_total_pi: torch.Tensor,
    log_probs_pi: torch.Tensor,
    log_alpha: torch.Tensor,
    target_entropy: float,
) -> NamedLosses:
    """Continuous CQL-MA: critic (``q``), SAC actor (``policy``), temperature (``entropy``)."""
    q_loss, diagnostics = cql_critic_loss(q_total, targets, penalty, cql_alpha)
    entropy_alpha = log_alpha.exp()
    policy_loss = sac_actor_loss(q_total_pi, log_probs_pi, entropy_alpha)
    entropy_loss = entropy_temperature_loss(log_alpha, log_probs_pi, target_entropy)
    with torch.no_grad():
        diagnostics.update(
            {
                "q_total_pi_mean": q_total_pi.detach().mean(),
                "log_prob_pi_mean": log_probs_pi.detach().mean(),
                "entropy_alpha": entropy_alpha.detach(),
            }
        )
    return NamedLosses({"q": q_loss, "policy": policy_loss, "entropy": entropy_loss}, diagnostics)
