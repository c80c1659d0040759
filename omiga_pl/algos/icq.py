"""ICQ (Yang et al., NeurIPS 2021, ICQ-MA), one-step form: nets and wiring; maths in losses/icq.py.

Two parameter groups: ``q`` (the shared local Q and the state-conditioned mixer) and
``policy``; Polyak targets of Q and the mixer. The critic's target uses the next
*dataset* actions (``batch.next_actions``) only. Discrete actions: ``Q_i(o_i) -> [A]``
and a categorical policy whose advantages use ICQ-MA's baseline ``sum_a pi Q_i`` and
whose per-agent credit is the mixer's normalised slope. Continuous actions (as the
ComaDICE repository's ICQ): ``Q_i(o_i, a_i)`` and the tanh-Gaussian policy, weighted by
a batch softmax of ``w_i(s) Q_i``. See docs/algorithms/icq.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from omiga_pl.algos.base import (
    BaseAlgoConfig,
    OfflineAlgorithm,
    PolicyFitConfig,
    TargetConfig,
    check_choice,
    check_positive,
)
from omiga_pl.algos.omiga import build_local_q, build_policy_from, q_at_actions
from omiga_pl.data.batch import Batch
from omiga_pl.losses.common import NamedLosses
from omiga_pl.losses.icq import credit_shares, expected_q, icq_critic_target, icq_losses
from omiga_pl.nets import MIXER_KINDS, build_mixer

# actor_beta when the config leaves it null: the sources' values per action type.
ACTOR_BETA_DEFAULTS = {"discrete": 0.1, "continuous": 100.0}


@dataclass
class ICQConfig(PolicyFitConfig, TargetConfig, BaseAlgoConfig):
    """ICQ's hyper-parameters (docs/algorithms/icq.md gives each one's source)."""

    name: str = "icq"
    # Discrete actions: mask unavailable actions in the policy's training log-probs. ICQ-MA
    # renormalises its policy over the available actions, so on by default here.
    mask_unavailable_in_training: bool = True
    # Temperature of the critic's softmax over the batch of next values Qt_tot(s', a')
    # (ICQ-MA and OffPyMARL: 1000).
    critic_beta: float = 1000.0
    # Temperature of the actor's softmax over the batch; null picks the source's value for
    # the dataset's action type: 0.1 discrete (ICQ-MA, OffPyMARL), 100 continuous (ComaDICE).
    actor_beta: float | None = None
    # Adam learning rates per parameter group: local Q + mixer, policy.
    lr_q: float = 5e-4
    lr_policy: float = 5e-4
    # Value decomposition: "linear" (OMIGA's w(s) Q + b(s); ICQ-MA's decomposition is linear
    # in the local Qs) or "qmix" (hypernetwork mixer).
    mixer: str = "linear"
    # Hidden units of the mixer (QMIX: hypernetwork width).
    mixer_hidden: int = 64

    def validate(self) -> None:
        super().validate()
        check_positive("algo.critic_beta", self.critic_beta)
        if self.actor_beta is not None:
            check_positive("algo.actor_beta", self.actor_beta)
        check_choice("algo.mixer", self.mixer, MIXER_KINDS)


def mixer_slopes(mixer: nn.Module, values: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """``dQ_tot / dQ_i`` at ``values`` [B, N] (states [B, S]) -> [B, N], detached.

    For the linear mixer these are exactly its weights ``w_i(s)``; for QMIX, the local
    slope of the hypernetwork mixer (non-negative: it is monotone). Computed on a detached
    copy of ``values`` so that nothing reaches the mixer's or the critic's gradients.
    """
    # torch.func.grad rather than autograd.grad: the same maths, and it also runs under
    # vmap (seed ensembles, omiga_pl/ensemble.py).
    states = states.detach()
    with torch.enable_grad():
        slopes = torch.func.grad(lambda v: mixer.mix(v, states).sum())(values.detach())
    return slopes.detach()


class ICQModule(OfflineAlgorithm):
    """ICQ-MA for discrete or continuous actions (chosen by ``dims["action_type"]``)."""

    config_class = ICQConfig
    cfg: ICQConfig

    def build(self) -> None:
        d, hidden = self.dims, list(self.cfg.hidden_sizes)
        # Construction order (q, mixer, policy) fixes the initial weights for a seed.
        self.q = build_local_q(d, hidden)
        self.mixer = build_mixer(self.cfg.mixer, d.state_dim, d.n_agents, self.cfg.mixer_hidden)
        self.policy = build_policy_from(d, self.cfg, hidden)
        self.add_target("q")
        self.add_target("mixer")

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "q": [*self.q.parameters(), *self.mixer.parameters()],
            "policy": list(self.policy.parameters()),
        }

    @property
    def actor_beta(self) -> float:
        """``cfg.actor_beta``, or the source's value for this action type when null."""
        if self.cfg.actor_beta is not None:
            return float(self.cfg.actor_beta)
        return ACTOR_BETA_DEFAULTS[self.dims.action_type]

    def critic_targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """One-step in-sample targets [B] and their softmax weights [B] (the place where a
        TD(lambda) version over sequence batches would go)."""
        if batch.next_actions is None:
            raise ValueError("icq: batch.next_actions is None; the target needs the next dataset actions")
        with torch.no_grad():
            next_q = q_at_actions(self.q_target, batch.next_observations, batch.next_actions, self.continuous)
            next_total = self.mixer_target.mix(next_q, batch.next_states)
        return icq_critic_target(batch.rewards, batch.masks, next_total, self.cfg.gamma, self.cfg.critic_beta)

    def compute_losses(self, batch: Batch) -> NamedLosses:
        obs, actions = batch.observations, batch.actions
        if self.continuous:
            q_taken = q_at_actions(self.q, obs, actions, continuous=True)
        else:
            q_all = self.q(obs)
            q_taken = q_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        q_total = self.mixer.mix(q_taken, batch.states)
        slopes = mixer_slopes(self.mixer, q_taken, batch.states)
        targets, critic_weights = self.critic_targets(batch)
        if self.continuous:
            log_probs, entropy = self.policy.log_prob_and_entropy(obs, actions)
            advantages = slopes * q_taken.detach()
            credit = torch.ones_like(slopes)
        else:
            avail = batch.avail_actions if self.cfg.mask_unavailable_in_training else None
            log_pi = torch.log_softmax(self.policy.logits(obs, avail).float(), dim=-1)
            log_probs = log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            entropy = -(log_pi.exp() * log_pi).sum(-1)
            advantages = q_taken.detach() - expected_q(log_pi.exp(), q_all)
            credit = credit_shares(slopes)
        losses = icq_losses(
            q_total=q_total,
            targets=targets,
            log_probs=log_probs,
            advantages=advantages,
            credit=credit,
            actor_beta=self.actor_beta,
        )
        losses.diagnostics["critic_weight_max"] = critic_weights.max()
        losses.diagnostics["policy_entropy"] = entropy.detach().mean()
        return losses
