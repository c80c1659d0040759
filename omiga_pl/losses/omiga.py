"""OMIGA's three losses as one pure function (see shared omiga-spec.md, "Losses").

Tensors in, scalar losses and diagnostics out; no modules, no state. Every cross-term
between the three losses is detached here, so the gradients of ``total`` reach each
network only through its own loss and one backward of the sum equals the reference's
three separate backward passes.

Shapes: B = batch, N = agents. Per-agent quantities are [B, N]; per-transition [B].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omiga_pl.losses.common import mix, mse, td_target

# z is clamped to this range before exponentiation, as in the reference.
Z_CLAMP = 10.0


@dataclass
class OmigaLosses:
    """The three OMIGA losses (scalars) and detached diagnostics."""

    q_loss: torch.Tensor
    v_loss: torch.Tensor
    policy_loss: torch.Tensor
    diagnostics: dict[str, torch.Tensor]

    @property
    def named(self) -> dict[str, torch.Tensor]:
        """Each loss under the name of the parameter group it trains."""
        return {"q": self.q_loss, "v": self.v_loss, "policy": self.policy_loss}

    @property
    def total(self) -> torch.Tensor:
        return self.q_loss + self.v_loss + self.policy_loss


def regularised_advantage(
    weights_target: torch.Tensor, q_target: torch.Tensor, values: torch.Tensor, alpha: float
) -> torch.Tensor:
    """``z_i = (wt_i(s) Qt_i - wt_i(s) V_i) / alpha`` clamped to [-10, 10]: [B, N].

    Gradient flows to ``values`` only (the target terms are detached).
    """
    weights_target, q_target = weights_target.detach(), q_target.detach()
    z = (weights_target * q_target - weights_target * values) / alpha
    return z.clamp(-Z_CLAMP, Z_CLAMP)


def omiga_losses(
    *,
    q_taken: torch.Tensor,
    weights: torch.Tensor,
    bias: torch.Tensor,
    q_target_taken: torch.Tensor,
    weights_target: torch.Tensor,
    values: torch.Tensor,
    next_values_target: torch.Tensor,
    next_weights_target: torch.Tensor,
    next_bias_target: torch.Tensor,
    log_probs: torch.Tensor,
    rewards: torch.Tensor,
    masks: torch.Tensor,
    alpha: float,
    gamma: float,
    weight_cap: float = 0.0,
) -> OmigaLosses:
    """OMIGA's Q/mixer, local value and policy losses for one batch.

    Args:
        q_taken: online local Q at the dataset actions, [B, N].
        weights, bias: online mixer at s, [B, N] (>= 0) and [B].
        q_target_taken: target local Q at the dataset actions, [B, N].
        weights_target: target mixer weights at s, [B, N].
        values: online local V(o_i), [B, N].
        next_values_target: target local V(o'_i), [B, N].
        next_weights_target, next_bias_target: target mixer at s', [B, N] and [B].
        log_probs: log pi_i(a_i | o_i) of the dataset actions, [B, N].
        rewards, masks: team reward and 1 - termination, [B].
        alpha, gamma: regularisation temperature and discount.
        weight_cap: upper bound on the policy weights ``exp(z)``; <= 0 leaves them at the
            reference's (bounded only by the clamp of z, e^10).
    """
    # 1. Q / mixer: regress the mixed online Q on the target-network TD target.
    # y = r + gamma * mask * (sum_i wt_i(s') V't_i(o'_i) + bt(s')), no gradient.
    y = td_target(rewards, masks, mix(next_weights_target, next_values_target, next_bias_target), gamma)
    q_total = mix(weights, q_taken, bias)
    q_loss = mse(q_total, y)

    # 2. Local values: the implicit local regularisation, stabilised by m.
    z = regularised_advantage(weights_target, q_target_taken, values, alpha)
    m = torch.clamp(z.max(), min=-1.0).detach()
    v_loss = (torch.exp(z - m) + torch.exp(-m) * weights_target.detach() * values / alpha).mean()

    # 3. Policy: advantage-weighted behaviour cloning with the same (detached) z.
    policy_weights = torch.exp(z).detach()
    if weight_cap > 0:
        policy_weights = policy_weights.clamp(max=weight_cap)
    policy_loss = -(policy_weights * log_probs).mean()

    with torch.no_grad():
        diagnostics = {
            "q_total_mean": q_total.mean(),
            "td_target_mean": y.mean(),
            "q_taken_mean": q_taken.mean(),
            "v_mean": values.mean(),
            "z_mean": z.mean(),
            "z_max": z.max(),
            "policy_weight_mean": policy_weights.mean(),
            "policy_weight_max": policy_weights.max(),
            # Share of weights that are at z's clamp (e^10) or at the cap.
            "z_clamped_share": (z >= Z_CLAMP).float().mean(),
            # Kish effective sample size of the weights, as a share of B*N: 1 = uniform,
            # 1/(B N) = one sample carries the whole policy loss.
            "policy_weight_ess": policy_weights.sum() ** 2
            / (policy_weights**2).sum()
            / policy_weights.numel(),
            "mixer_w_mean": weights.mean(),
            "mixer_w_std": weights.std(),
            "mixer_b_mean": bias.mean(),
            "log_prob_mean": log_probs.mean(),
        }
    return OmigaLosses(q_loss=q_loss, v_loss=v_loss, policy_loss=policy_loss, diagnostics=diagnostics)
