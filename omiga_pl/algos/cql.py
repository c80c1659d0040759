"""CQL-MA: conservative Q-learning on local Qs through a value-decomposition mixer; wiring only.

The maths is in losses/cql.py. Discrete actions (OffPyMARL's ``q_learner`` with
``qmix_cql``): one group ``q`` (local ``Q_i(o_i) -> [A]`` + mixer), a double-Q one-step
target, the logsumexp penalty over available actions, and greedy acting on the local Q.
Continuous actions (the ComaDICE repository's CQL, SAC-style as in Kumar et al.): local
``Q_i(o_i, a_i)`` + mixer (``q``), a tanh-Gaussian actor (``policy``) and its entropy
temperature (``entropy``); the penalty uses sampled actions, drawn from a generator
seeded by (seed, rank, update) so that a resumed run draws the same noise. See
docs/algorithms/cql.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from omiga_pl.algos.base import (
    BaseAlgoConfig,
    OfflineAlgorithm,
    TargetConfig,
    call_detached,
    check_choice,
    check_non_negative,
    check_positive,
)
from omiga_pl.algos.omiga import build_local_q, build_policy, q_at_actions
from omiga_pl.data.batch import Batch
from omiga_pl.losses.common import (
    NamedLosses,
    conservative_penalty_discrete,
    conservative_penalty_sampled,
    td_target,
)
from omiga_pl.losses.cql import cql_continuous_losses, cql_discrete_losses, double_q_next_values
from omiga_pl.nets import MIXER_KINDS, build_mixer, tanh_gaussian_sample
from omiga_pl.nets.policy import ACTION_EPS


@dataclass
class CQLConfig(TargetConfig, BaseAlgoConfig):
    """CQL-MA's hyper-parameters (docs/algorithms/cql.md gives each one's source)."""

    name: str = "cql"
    # Weight of the CQL(H) penalty (summed over agents, averaged over the batch); 1 in
    # OffPyMARL's qmix_cql / vdn_cql and in the ComaDICE repository's continuous CQL.
    cql_alpha: float = 1.0
    # Continuous actions: actions sampled per proposal (uniform, policy at o, policy at o')
    # for the penalty's logsumexp; 10 in every source checked.
    cql_n_actions: int = 10
    # Adam learning rates per parameter group: local Q + mixer; the actor and its entropy
    # temperature (both continuous actions only).
    lr_q: float = 5e-4
    lr_policy: float = 5e-4
    lr_entropy: float = 5e-4
    # Value decomposition: "linear" (OMIGA's w(s) Q + b(s), for a like-for-like comparison)
    # or "qmix" (hypernetwork mixer, as OffPyMARL's qmix_cql).
    mixer: str = "linear"
    # Hidden units of the mixer (QMIX: hypernetwork width).
    mixer_hidden: int = 64

    def validate(self) -> None:
        super().validate()
        check_non_negative("algo.cql_alpha", self.cql_alpha)
        check_positive("algo.cql_n_actions", self.cql_n_actions)
        check_choice("algo.mixer", self.mixer, MIXER_KINDS)


class CQLModule(OfflineAlgorithm):
    """CQL-MA for discrete or continuous actions (chosen by ``dims["action_type"]``)."""

    config_class = CQLConfig
    cfg: CQLConfig

    def build(self) -> None:
        d, hidden = self.dims, list(self.cfg.hidden_sizes)
        # Construction order (q, mixer[, policy]) fixes the initial weights for a seed.
        self.q = build_local_q(d, hidden)
        self.mixer = build_mixer(self.cfg.mixer, d.state_dim, d.n_agents, self.cfg.mixer_hidden)
        if self.continuous:
            self.policy = build_policy(d, hidden, ACTION_EPS)
            # SAC temperature alpha = exp(log_alpha), starting at 1; target entropy -A per agent.
            self.log_alpha = nn.Parameter(torch.zeros(()))
            self.target_entropy = -float(d.action_dim)
        self.add_target("q")
        self.add_target("mixer")

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"q": [*self.q.parameters(), *self.mixer.parameters()]}
        if self.continuous:
            groups["policy"] = list(self.policy.parameters())
            groups["entropy"] = [self.log_alpha]
        return groups

    @torch.no_grad()
    def act(self, observations: torch.Tensor, avail_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Continuous: ``tanh(mean)``; discrete: argmax of the local Q over available actions."""
        if self.continuous:
            return self.policy.act(observations)
        q = self.q(observations)
        if avail_actions is not None:
            q = q.masked_fill(~avail_actions, float("-inf"))
        return q.argmax(-1)

    def compute_losses(self, batch: Batch) -> NamedLosses:
        if self.continuous:
            return self.continuous_losses(batch)
        return self.discrete_losses(batch)

    def discrete_losses(self, batch: Batch) -> NamedLosses:
        q_all = self.q(batch.observations)
        q_taken = q_all.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        q_total = self.mixer.mix(q_taken, batch.states)
        with torch.no_grad():
            # Double Q (OffPyMARL qmix_cql: double_q True): online argmax, target value.
            next_obs = batch.next_observations
            next_q = double_q_next_values(self.q(next_obs), self.q_target(next_obs), batch.next_avail_actions)
            next_total = self.mixer_target.mix(next_q, batch.next_states)
        targets = td_target(batch.rewards, batch.masks, next_total, self.cfg.gamma)
        penalty = conservative_penalty_discrete(q_all, q_taken, batch.avail_actions)
        alpha = self.cfg.cql_alpha
        return cql_discrete_losses(q_total=q_total, targets=targets, penalty=penalty, cql_alpha=alpha)

    def continuous_losses(self, batch: Batch) -> NamedLosses:
        obs, states = batch.observations, batch.states
        b, n, a = batch.actions.shape
        k = self.cfg.cql_n_actions
        noise = self.noise(obs.device)

        def normal(*shape: int) -> torch.Tensor:
            return noise.normal(shape, like=obs)

        q_taken = q_at_actions(self.q, obs, batch.actions, continuous=True)
        q_total = self.mixer.mix(q_taken, states)
        mean, log_std = self.policy.mean_and_log_std(obs)
        with torch.no_grad():
            next_mean, next_log_std = self.policy.mean_and_log_std(batch.next_observations)
            # One next action for the TD target, k more for the penalty.
            next_pi, next_log_pi = tanh_gaussian_sample(next_mean, next_log_std, normal(1 + k, b, n, a))
            next_q = q_at_actions(self.q_target, batch.next_observations, next_pi[0], continuous=True)
            next_total = self.mixer_target.mix(next_q, batch.next_states)
            current_pi, current_log_pi = tanh_gaussian_sample(mean, log_std, normal(k, b, n, a))
            uniform = noise.uniform((k, b, n, a), like=obs) * 2 - 1
            # Proposal log-densities: uniform on [-1, 1]^A, and the policy's own.
            uniform_log_density = torch.full((k, b, n), -a * math.log(2.0), device=obs.device)
            sampled = torch.cat([uniform, current_pi, next_pi[1:]])
            log_density = torch.cat([uniform_log_density, current_log_pi, next_log_pi[1:]])
        targets = td_target(batch.rewards, batch.masks, next_total, self.cfg.gamma)
        # Q_i(o_i, a_k) for every sample [3k, B, N]; the penalty wants samples last.
        q_sampled = q_at_actions(self.q, obs.expand(3 * k, -1, -1, -1), sampled, continuous=True)
        samples_last = (1, 2, 0)
        penalty = conservative_penalty_sampled(
            q_sampled.permute(samples_last), log_density.permute(samples_last), q_taken
        )
        # Actor: reparameterised actions through the critic with its parameters detached.
        pi_actions, log_probs_pi = tanh_gaussian_sample(mean, log_std, normal(b, n, a))
        q_pi = call_detached(self.q, torch.cat([obs, pi_actions], dim=-1)).squeeze(-1)
        q_total_pi = call_detached(self.mixer, q_pi, states, method="mix")
        return cql_continuous_losses(
            q_total=q_total,
            targets=targets,
            penalty=penalty,
            cql_alpha=self.cfg.cql_alpha,
            q_total_pi=q_total_pi,
            log_probs_pi=log_probs_pi,
            log_alpha=self.log_alpha,
            target_entropy=self.target_entropy,
        )
