"""OMAR (Pan et al., ICML 2022): independent CQL critics, actor rectified by a zeroth-order search.

Nets and wiring only; the maths is in losses/omar.py.

Two parameter groups: ``q`` (a twin per-agent critic, TD3's clipped double Q) and
``policy``; Polyak targets of both, as in the authors' MATD3 code. The critics are
independent and decentralised: ``Q_i(o_i, a_i)``, shared across agents with a one-hot id,
each regressed on the team reward (no mixer, no global state). Continuous actions (the
paper's setting): a deterministic tanh actor; the actor loss evaluates ``Q1(o, pi(o))``
with :func:`call_detached` so no actor gradient reaches the critic. Discrete actions
follow OffPyMARL's ``omar_learner``: ``Q_i(o_i) -> [A]``, a categorical actor and the
exact argmax in place of the sampled search. See docs/algorithms/omar.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from omiga_pl.algos.base import (
    BaseAlgoConfig,
    OfflineAlgorithm,
    TargetConfig,
    call_detached,
    check_at_least_one,
    check_in_range,
    check_non_negative,
    check_positive,
)
from omiga_pl.data.batch import Batch
from omiga_pl.errors import ConfigError
from omiga_pl.losses.common import NamedLosses
from omiga_pl.losses.omar import (
    cql_proposal_actions,
    mimic_actions,
    omar_losses_continuous,
    omar_losses_discrete,
    zeroth_order_search,
)
from omiga_pl.nets import CategoricalPolicy, DeterministicPolicy, TwinQ


@dataclass
class OmarConfig(TargetConfig, BaseAlgoConfig):
    """OMAR's hyper-parameters; defaults are the authors' MaMuJoCo settings (main.py) with
    their HalfCheetah medium-replay weights (cql_alpha 5, omar_coe 0.9)."""

    name: str = "omar"
    # Gradient-norm clip of each group (the authors hard-code 0.5 for critic and actor).
    grad_clip: float = 0.5
    # Adam learning rates per parameter group: twin critic, actor (authors: 3e-4 both).
    lr_q: float = 3e-4
    lr_policy: float = 3e-4
    # Weight of the CQL(H) penalty on each twin critic (authors, per dataset: 1 to 5).
    cql_alpha: float = 5.0
    # Temperature of the CQL logsumexp (authors' lse_temp).
    cql_temperature: float = 1.0
    # Continuous: sampled actions per proposal for the CQL penalty (uniform, around pi(o),
    # around pi(o')), so 3x this many per agent and transition.
    cql_num_actions: int = 10
    # Continuous: std of the Gaussian noise around the actor's actions in the CQL proposals.
    cql_noise_std: float = 0.2
    # Actor: weight of the regression toward the searched action; 1 - omar_coe weighs the
    # policy-gradient term -Q1(o, pi(o)) (authors, per dataset: 0.5 to 1).
    omar_coe: float = 0.9
    # Continuous search (cross-entropy method): refitting iterations.
    omar_iters: int = 2
    # Continuous search: Gaussian samples scored by Q1 per iteration.
    omar_num_samples: int = 20
    # Continuous search: best samples kept per iteration (mean and std refitted to them).
    omar_num_elites: int = 5
    # Continuous search: initial mean and std of the Gaussian, every action dimension.
    omar_mu: float = 0.0
    omar_sigma: float = 2.0
    # Continuous actor: weight of the mean squared action penalty (authors: 1e-3).
    action_l2: float = 1e-3

    def validate(self) -> None:
        super().validate()
        for key in ("cql_temperature", "cql_noise_std", "omar_sigma"):
            check_positive(f"algo.{key}", getattr(self, key))
        for key in ("cql_alpha", "action_l2"):
            check_non_negative(f"algo.{key}", getattr(self, key))
        check_in_range("algo.omar_coe", self.omar_coe, 0.0, 1.0, "[0, 1]")
        check_in_range("algo.omar_mu", self.omar_mu, -1.0, 1.0, "[-1, 1]")
        for key in ("cql_num_actions", "omar_iters", "omar_num_samples"):
            check_at_least_one(f"algo.{key}", getattr(self, key))
        if not 2 <= self.omar_num_elites <= self.omar_num_samples:
            raise ConfigError(
                f"config: key 'algo.omar_num_elites': expected an integer in "
                f"[2, algo.omar_num_samples = {self.omar_num_samples}] (the elites' std needs two), "
                f"found {self.omar_num_elites}"
            )


class OmarModule(OfflineAlgorithm):
    """OMAR for continuous (the paper's) or discrete (OffPyMARL's form) actions."""

    config_class = OmarConfig
    cfg: OmarConfig

    def build(self) -> None:
        d, hidden = self.dims, list(self.cfg.hidden_sizes)
        # Construction order (critic, actor) fixes the initial weights for a seed.
        if self.continuous:
            self.q = TwinQ(d.n_agents, d.obs_dim + d.action_dim, hidden, 1)
            self.policy = DeterministicPolicy(d.n_agents, d.obs_dim, d.action_dim, hidden)
        else:
            self.q = TwinQ(d.n_agents, d.obs_dim, hidden, d.action_dim)
            self.policy = CategoricalPolicy(d.n_agents, d.obs_dim, d.action_dim, hidden)
        self.add_target("q")
        self.add_target("policy")

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"q": list(self.q.parameters()), "policy": list(self.policy.parameters())}

    def compute_losses(self, batch: Batch) -> NamedLosses:
        if self.continuous:
            return self.continuous_losses(batch)
        return self.discrete_losses(batch)

    def continuous_losses(self, batch: Batch) -> NamedLosses:
        cfg = self.cfg
        obs, next_obs = batch.observations, batch.next_observations
        actions = batch.actions.to(obs.dtype)
        (b, n, a), k = actions.shape, cfg.cql_num_actions
        noise = self.noise(obs.device)
        policy_actions = self.policy(obs)
        with torch.no_grad():
            next_q1, next_q2 = self.q_target(torch.cat([next_obs, self.policy_target(next_obs)], -1))
            uniform = noise.uniform((b, k, n, a), like=obs) * 2 - 1
            normal = noise.normal((b, 2 * k, n, a), like=obs)
            proposals, log_density = cql_proposal_actions(
                policy_actions.detach(), self.policy(next_obs), uniform, normal, cfg.cql_noise_std
            )
        # One critic pass per twin over the dataset action and every CQL proposal: [B, 1 + 3K, N].
        candidates = torch.cat([actions.unsqueeze(1), proposals], dim=1)
        obs_rep = obs.unsqueeze(1).expand(-1, candidates.shape[1], -1, -1)
        q1, q2 = (q.squeeze(-1) for q in self.q(torch.cat([obs_rep, candidates], -1)))
        # The actor climbs Q1 with the critic's weights detached.
        policy_q = call_detached(self.q.q1, torch.cat([obs, policy_actions], -1)).squeeze(-1)
        with torch.no_grad():
            search_obs = obs.unsqueeze(1).expand(-1, cfg.omar_num_samples, -1, -1)

            def q_fn(samples: torch.Tensor) -> torch.Tensor:
                return self.q.q1(torch.cat([search_obs, samples], -1)).squeeze(-1)

            shape = (cfg.omar_iters, b, cfg.omar_num_samples, n, a)
            search_normal = noise.normal(shape, like=obs)
            search_actions, search_q = zeroth_order_search(
                q_fn,
                search_normal,
                actions.new_full((b, n, a), cfg.omar_mu),
                actions.new_full((b, n, a), cfg.omar_sigma),
                cfg.omar_num_elites,
            )
            targets = mimic_actions(policy_actions.detach(), policy_q.detach(), search_actions, search_q)
        losses = omar_losses_continuous(
            q1_taken=q1[:, 0],
            q2_taken=q2[:, 0],
            q1_samples=q1[:, 1:].transpose(1, 2),
            q2_samples=q2[:, 1:].transpose(1, 2),
            log_density=log_density.transpose(1, 2),
            next_q1_target=next_q1.squeeze(-1),
            next_q2_target=next_q2.squeeze(-1),
            rewards=batch.rewards,
            masks=batch.masks,
            policy_actions=policy_actions,
            policy_q=policy_q,
            targets=targets,
            gamma=cfg.gamma,
            cql_alpha=cfg.cql_alpha,
            cql_temperature=cfg.cql_temperature,
            omar_coe=cfg.omar_coe,
            action_l2=cfg.action_l2,
        )
        losses.diagnostics["search_beats_policy"] = (search_q > policy_q.detach()).float().mean()
        return losses

    def discrete_losses(self, batch: Batch) -> NamedLosses:
        q1_all, q2_all = self.q(batch.observations)
        with torch.no_grad():
            next_actions = self.policy_target.act(batch.next_observations, batch.next_avail_actions)
            next_q1, next_q2 = self.q_target(batch.next_observations)
            next_q1 = next_q1.gather(-1, next_actions.unsqueeze(-1)).squeeze(-1)
            next_q2 = next_q2.gather(-1, next_actions.unsqueeze(-1)).squeeze(-1)
        return omar_losses_discrete(
            q1_all=q1_all,
            q2_all=q2_all,
            actions=batch.actions,
            next_q1_target=next_q1,
            next_q2_target=next_q2,
            rewards=batch.rewards,
            masks=batch.masks,
            logits=self.policy.logits(batch.observations, batch.avail_actions),
            avail_actions=batch.avail_actions,
            gamma=self.cfg.gamma,
            cql_alpha=self.cfg.cql_alpha,
            omar_coe=self.cfg.omar_coe,
        )
