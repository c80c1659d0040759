"""OMIGA (Wang et al., NeurIPS 2023): nets and wiring only; the maths is in losses/omiga.py.

Three parameter groups: ``q`` (local Q + the state-conditioned mixer), ``v`` (local V)
and ``policy``; Polyak targets of Q, V and the mixer. The action type comes from the
dataset: discrete actions get a local Q with one output per action (gathered at the
dataset action) and a categorical policy; continuous actions get ``Q_i(o_i, a_i)`` (the
action concatenated to the observation) and the Gaussian policy family ``algo.policy``
(the reference's tanh-squashed Gaussian, or a Gaussian with tanh-squashed mean). Every
cross-term of the three losses is detached, so the base's single backward of their sum
is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from omiga_pl.algos.base import BaseAlgoConfig, OfflineAlgorithm, PolicyFitConfig, TargetConfig
from omiga_pl.data.batch import Batch
from omiga_pl.dims import ProblemDims
from omiga_pl.losses.omiga import OmigaLosses, omiga_losses
from omiga_pl.nets import AgentMLP, CategoricalPolicy, Mixer
from omiga_pl.nets.policy import build_continuous_policy

__all__ = [
    "OmigaConfig",
    "OmigaModule",
    "ProblemDims",
    "build_local_q",
    "build_policy",
    "build_policy_from",
    "q_at_actions",
]


@dataclass
class OmigaConfig(PolicyFitConfig, TargetConfig, BaseAlgoConfig):
    """OMIGA's hyper-parameters; defaults are the reference's (omiga-spec.md)."""

    name: str = "omiga"
    # Regularisation temperature (the reference hard-codes 10 for every task).
    alpha: float = 10.0
    # Adam learning rates per parameter group: local Q + mixer, local V, policy.
    lr_q: float = 5e-4
    lr_v: float = 5e-4
    lr_policy: float = 5e-4
    # Hidden units of the state-conditioned mixer.
    mixer_hidden: int = 64
    # Upper bound on the policy's advantage weights exp(z) (z is already clamped to
    # [-10, 10], so weights reach e^10 = 22026); <= 0: no bound beyond that, the
    # reference's. IQL caps its exp-weights at 100.
    policy_weight_cap: float = 0.0


def build_local_q(dims: ProblemDims, hidden: list[int]) -> AgentMLP:
    """Shared local Q: ``Q_i(o_i) -> [A]`` (discrete) or ``Q_i(o_i, a_i) -> 1`` (continuous)."""
    if dims.action_type == "continuous":
        return AgentMLP(dims.n_agents, dims.obs_dim + dims.action_dim, hidden, 1)
    return AgentMLP(dims.n_agents, dims.obs_dim, hidden, dims.action_dim)


def build_policy(
    dims: ProblemDims,
    hidden: list[int],
    action_eps: float,
    kind: str = "tanh_gaussian",
    log_std: str = "state",
) -> nn.Module:
    """Categorical (discrete) or the continuous family ``kind`` with ``log_std``
    (:func:`omiga_pl.nets.policy.build_continuous_policy`; both ignored for discrete)."""
    if dims.action_type == "continuous":
        return build_continuous_policy(
            kind, dims.n_agents, dims.obs_dim, dims.action_dim, hidden, action_eps, log_std
        )
    return CategoricalPolicy(dims.n_agents, dims.obs_dim, dims.action_dim, hidden)


def build_policy_from(dims: ProblemDims, cfg: PolicyFitConfig, hidden: list[int] | None = None) -> nn.Module:
    """:func:`build_policy` with the keys of a :class:`PolicyFitConfig`."""
    hidden = list(cfg.hidden_sizes) if hidden is None else hidden  # type: ignore[attr-defined]
    return build_policy(dims, hidden, cfg.action_eps, cfg.policy, cfg.policy_log_std)


def q_at_actions(
    q_net: nn.Module, obs: torch.Tensor, actions: torch.Tensor, continuous: bool
) -> torch.Tensor:
    """Local Q at the given actions: [B, N].

    Discrete: ``Q_i(o_i)`` [B, N, A] gathered at ``actions`` [B, N]. Continuous:
    ``Q_i(o_i, a_i)`` with ``actions`` [B, N, A] concatenated to the observation.
    """
    if continuous:
        return q_net(torch.cat([obs, actions.to(obs.dtype)], dim=-1)).squeeze(-1)
    return q_net(obs).gather(-1, actions.unsqueeze(-1)).squeeze(-1)


class OmigaModule(OfflineAlgorithm):
    """OMIGA for discrete or continuous actions (chosen by ``dims["action_type"]``)."""

    config_class = OmigaConfig
    cfg: OmigaConfig
    # Networks with Polyak targets (the policy has none).
    target_names: tuple[str, ...] = ("q", "v", "mixer")

    def build(self) -> None:
        d, hidden = self.dims, list(self.cfg.hidden_sizes)
        # Construction order (q, v, mixer, policy) fixes the initial weights for a seed.
        self.q = build_local_q(d, hidden)
        self.v = AgentMLP(d.n_agents, d.obs_dim, hidden, 1)
        self.build_mixer()
        self.policy = build_policy_from(d, self.cfg, hidden)
        for name in self.target_names:
            self.add_target(name)

    def build_mixer(self) -> None:
        self.mixer = Mixer(self.dims.state_dim, self.dims.n_agents, self.cfg.mixer_hidden)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The three parameter groups, in optimizer order."""
        return {
            "q": [*self.q.parameters(), *self.mixer.parameters()],
            "v": list(self.v.parameters()),
            "policy": list(self.policy.parameters()),
        }

    def q_at_actions(self, q_net: nn.Module, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Local Q at the dataset actions: [B, N] (see :func:`q_at_actions`)."""
        return q_at_actions(q_net, obs, actions, self.continuous)

    def mix_weights(
        self, batch: Batch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Online mixer at s and target mixer at s and s': (w, b, wt(s), wt(s'), bt(s'))."""
        weights, bias = self.mixer(batch.states)
        with torch.no_grad():
            # One mixer pass over s and s' together.
            both_w, both_b = self.mixer_target(torch.cat([batch.states, batch.next_states]))
        b = batch.batch_size
        return weights, bias, both_w[:b], both_w[b:], both_b[b:]

    def compute_losses(self, batch: Batch) -> OmigaLosses:
        """Forward every network once on ``batch`` and evaluate OMIGA's losses."""
        obs, actions = batch.observations, batch.actions
        q_taken = self.q_at_actions(self.q, obs, actions)
        weights, bias, weights_target, next_weights_target, next_bias_target = self.mix_weights(batch)
        values = self.v(obs).squeeze(-1)
        train_avail = batch.avail_actions if self.cfg.mask_unavailable_in_training else None
        log_probs, entropy = self.policy.log_prob_and_entropy(obs, actions, train_avail)
        with torch.no_grad():
            q_target_taken = self.q_at_actions(self.q_target, obs, actions)
            next_values_target = self.v_target(batch.next_observations).squeeze(-1)
        losses = omiga_losses(
            q_taken=q_taken,
            weights=weights,
            bias=bias,
            q_target_taken=q_target_taken,
            weights_target=weights_target,
            values=values,
            next_values_target=next_values_target,
            next_weights_target=next_weights_target,
            next_bias_target=next_bias_target,
            log_probs=log_probs,
            rewards=batch.rewards,
            masks=batch.masks,
            alpha=self.cfg.alpha,
            gamma=self.cfg.gamma,
            weight_cap=self.cfg.policy_weight_cap,
        )
        losses.diagnostics["policy_entropy"] = entropy.detach().mean()
        return losses
