"""BCQ-MA: batch-constrained Q-learning per agent, combined through a value-decomposition mixer.

Nets and wiring only; the maths is in losses/bcq.py, the page docs/algorithms/bcq.md.

- Discrete (discrete BCQ, Fujimoto et al. 2019): groups ``q`` (local Q ``Q_i(o_i) -> [A]``
  + mixer) and ``behaviour`` (a categorical behaviour model fitted by likelihood). The
  target evaluates the target local Q at ``argmax`` of the online local Q over the actions
  the behaviour model keeps (relative probability > ``tau_bcq``, available) at o', mixed
  by the target mixer at s'. Acting: the same filtered argmax at o.
- Continuous (BCQ, Fujimoto et al. 2019): groups ``q`` (twin local critics
  ``Q_i(o_i, a_i)`` + mixer), ``actor`` (the perturbation ``xi``) and ``vae`` (the
  conditional VAE). The target decodes ``n_target_samples`` actions per agent at o',
  perturbs them with the target actor, takes the soft clipped double-Q value, the max over
  samples per agent, and mixes those by the target mixer (for a monotone mixer this is the
  max over every joint action built from the samples). The actor maximises the first
  critic through :func:`call_detached`. Acting: among ``n_act_samples`` decoded+perturbed
  candidates per agent, the one with the highest first-critic value.

Training noise (VAE reparameterisation, prior samples) comes from a generator seeded by
(run seed, rank, update index), so a resumed run draws what the straight run drew; acting
uses a generator with a fixed seed, so evaluation is deterministic and never touches the
global torch RNG.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from omiga_pl.algos.base import (
    BaseAlgoConfig,
    OfflineAlgorithm,
    TargetConfig,
    call_detached,
    check_at_least_one,
    check_choice,
    check_in_range,
    check_non_negative,
    check_positive,
)
from omiga_pl.algos.omiga import build_local_q, q_at_actions
from omiga_pl.data.batch import Batch
from omiga_pl.losses.bcq import (
    bcq_allowed_actions,
    bcq_continuous_losses,
    bcq_discrete_losses,
    behaviour_log_probs,
    filtered_argmax,
    soft_clipped_double_q,
)
from omiga_pl.losses.common import NamedLosses
from omiga_pl.nets import (
    MIXER_KINDS,
    CategoricalPolicy,
    ConditionalVAE,
    PerturbationActor,
    build_mixer,
    prior_latents,
)
from omiga_pl.noise import GeneratorNoise

# Acting draws its candidate latents from a generator with this seed on every call.
ACT_SEED = 0


@dataclass
class BCQConfig(TargetConfig, BaseAlgoConfig):
    """BCQ-MA's hyper-parameters (docs/algorithms/bcq.md); keys of one action type only
    are ignored for the other."""

    name: str = "bcq"
    # Value-decomposition mixer of the local Qs: "linear" (OMIGA's w(s) Q + b(s)) or "qmix".
    mixer: str = "linear"
    # Hidden units of the mixer (linear: its hidden layer; qmix: hypernetwork width).
    mixer_hidden: int = 64
    # Adam learning rate of the local Q(s) + mixer.
    lr_q: float = 5e-4
    # Discrete: Adam learning rate of the behaviour model.
    lr_behaviour: float = 5e-4
    # Discrete: keep actions with pi_b(a|o) / max_a' pi_b(a'|o) > tau_bcq (and available),
    # in [0, 1); 0 keeps every available action (plain Q-learning). Fujimoto et al.: 0.3.
    tau_bcq: float = 0.3
    # Discrete: weight of the behaviour model's mean squared logit (Fujimoto et al.: 0.01).
    logit_reg: float = 0.01
    # Discrete: the behaviour model's likelihood over available actions only.
    mask_unavailable_in_training: bool = False
    # Continuous: Adam learning rate of the perturbation actor.
    lr_actor: float = 5e-4
    # Continuous: Adam learning rate of the VAE.
    lr_vae: float = 5e-4
    # Continuous: bound of the perturbation, |xi| <= phi (actions in [-1, 1]; BCQ: 0.05).
    phi: float = 0.05
    # Continuous: target mix of the twin critics, lmbda min + (1 - lmbda) max (BCQ: 0.75).
    lmbda: float = 0.75
    # Continuous: actions decoded per agent and next observation for the TD target (BCQ: 10).
    n_target_samples: int = 10
    # Continuous: candidates decoded per agent when acting (BCQ: 100; 10 keeps CPU
    # evaluation cheap).
    n_act_samples: int = 10
    # Continuous: hidden layer sizes of the VAE's encoder and decoder; the latent size is
    # twice the per-agent action size, as in BCQ.
    vae_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])

    def validate(self) -> None:
        super().validate()
        check_choice("algo.mixer", self.mixer, MIXER_KINDS)
        check_in_range("algo.tau_bcq", self.tau_bcq, 0.0, 1.0, "[0, 1)", high_open=True)
        check_in_range("algo.lmbda", self.lmbda, 0.0, 1.0, "[0, 1]")
        check_positive("algo.phi", self.phi)
        check_at_least_one("algo.n_target_samples", self.n_target_samples)
        check_at_least_one("algo.n_act_samples", self.n_act_samples)
        check_non_negative("algo.logit_reg", self.logit_reg)


class BCQModule(OfflineAlgorithm):
    """BCQ-MA for discrete or continuous actions (chosen by ``dims["action_type"]``)."""

    config_class = BCQConfig
    cfg: BCQConfig

    def build(self) -> None:
        d, hidden = self.dims, list(self.cfg.hidden_sizes)
        if self.continuous:
            # Construction order fixes the initial weights for a seed.
            self.q1 = build_local_q(d, hidden)
            self.q2 = build_local_q(d, hidden)
            self.mixer = build_mixer(self.cfg.mixer, d.state_dim, d.n_agents, self.cfg.mixer_hidden)
            self.actor = PerturbationActor(d.n_agents, d.obs_dim, d.action_dim, hidden, self.cfg.phi)
            self.vae = ConditionalVAE(
                d.n_agents, d.obs_dim, d.action_dim, 2 * d.action_dim, list(self.cfg.vae_hidden_sizes)
            )
            for name in ("q1", "q2", "mixer", "actor"):
                self.add_target(name)
        else:
            self.q = build_local_q(d, hidden)
            self.mixer = build_mixer(self.cfg.mixer, d.state_dim, d.n_agents, self.cfg.mixer_hidden)
            self.behaviour = CategoricalPolicy(d.n_agents, d.obs_dim, d.action_dim, hidden)
            for name in ("q", "mixer"):
                self.add_target(name)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        if self.continuous:
            return {
                "q": [*self.q1.parameters(), *self.q2.parameters(), *self.mixer.parameters()],
                "actor": list(self.actor.parameters()),
                "vae": list(self.vae.parameters()),
            }
        return {
            "q": [*self.q.parameters(), *self.mixer.parameters()],
            "behaviour": list(self.behaviour.parameters()),
        }

    def compute_losses(self, batch: Batch) -> NamedLosses:
        if self.continuous:
            return self.continuous_losses(batch)
        return self.discrete_losses(batch)

    # ------------------------------------------------------------------------ discrete
    def discrete_losses(self, batch: Batch) -> NamedLosses:
        obs, actions = batch.observations, batch.actions
        q_total = self.mixer.mix(q_at_actions(self.q, obs, actions, False), batch.states)
        logits = self.behaviour.logits(obs)
        train_avail = batch.avail_actions if self.cfg.mask_unavailable_in_training else None
        log_probs = behaviour_log_probs(logits, actions, train_avail)
        with torch.no_grad():
            next_obs = batch.next_observations
            allowed = bcq_allowed_actions(
                self.behaviour.logits(next_obs), batch.next_avail_actions, self.cfg.tau_bcq
            )
            next_actions = filtered_argmax(self.q(next_obs), allowed)
            next_q_target = q_at_actions(self.q_target, next_obs, next_actions, False)
            next_total_target = self.mixer_target.mix(next_q_target, batch.next_states)
        losses = bcq_discrete_losses(
            q_total=q_total,
            next_total_target=next_total_target,
            rewards=batch.rewards,
            masks=batch.masks,
            gamma=self.cfg.gamma,
            log_probs=log_probs,
            logits=logits,
            logit_reg=self.cfg.logit_reg,
        )
        with torch.no_grad():
            avail = batch.next_avail_actions
            n_avail = allowed.numel() if avail is None else avail.sum()
            losses.diagnostics["kept_action_fraction"] = allowed.sum() / n_avail
        return losses

    # ---------------------------------------------------------------------- continuous
    def continuous_losses(self, batch: Batch) -> NamedLosses:
        obs, actions, next_obs = batch.observations, batch.actions, batch.next_observations
        noise = self.noise(obs.device)
        latent = self.vae.latent_dim
        k = self.cfg.n_target_samples
        posterior_noise = noise.normal((*actions.shape[:-1], latent), like=obs)
        actor_latents = prior_latents((*actions.shape[:-1], latent), noise, obs)
        target_latents = prior_latents((k, *actions.shape[:-1], latent), noise, obs)

        # VAE: reconstruct the dataset actions.
        reconstruction, latent_mean, latent_log_std = self.vae(obs, actions, posterior_noise)

        # Critics: twin local Qs at the dataset actions, each mixed by the online mixer.
        q1_total = self.mixer.mix(q_at_actions(self.q1, obs, actions, True), batch.states)
        q2_total = self.mixer.mix(q_at_actions(self.q2, obs, actions, True), batch.states)

        with torch.no_grad():
            # K candidates per agent at o' ([K, B, N, .]), perturbed by the target actor.
            next_obs_k = next_obs.expand(k, *next_obs.shape)
            next_actions = self.actor_target(next_obs_k, self.vae.decode(next_obs_k, target_latents))
            next_q = soft_clipped_double_q(
                q_at_actions(self.q1_target, next_obs_k, next_actions, True),
                q_at_actions(self.q2_target, next_obs_k, next_actions, True),
                self.cfg.lmbda,
            )
            # Per-agent max over candidates, then the (monotone) target mixer.
            next_total_target = self.mixer_target.mix(next_q.max(dim=0).values, batch.next_states)
            # The actor's input sample; the VAE gets no gradient from the actor loss.
            sampled = self.vae.decode(obs, actor_latents)

        perturbed = self.actor(obs, sampled)
        actor_q = call_detached(self.q1, torch.cat([obs, perturbed], dim=-1)).squeeze(-1)
        losses = bcq_continuous_losses(
            q1_total=q1_total,
            q2_total=q2_total,
            next_total_target=next_total_target,
            rewards=batch.rewards,
            masks=batch.masks,
            gamma=self.cfg.gamma,
            actor_q=actor_q,
            reconstruction=reconstruction,
            actions=actions,
            latent_mean=latent_mean,
            latent_log_std=latent_log_std,
        )
        losses.diagnostics["perturbation_abs_mean"] = (perturbed - sampled).detach().abs().mean()
        return losses

    # --------------------------------------------------------------------------- acting
    @torch.no_grad()
    def act(self, observations: torch.Tensor, avail_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Discrete: argmax of the local Q over the kept, available actions: [E, N] int64.
        Continuous: the best of ``n_act_samples`` decoded+perturbed candidates per agent
        by the first critic, latents from a fixed-seed generator: [E, N, A]."""
        if not self.continuous:
            logits = self.behaviour.logits(observations)
            allowed = bcq_allowed_actions(logits, avail_actions, self.cfg.tau_bcq)
            return filtered_argmax(self.q(observations), allowed)
        k, device = self.cfg.n_act_samples, observations.device
        fixed = GeneratorNoise(torch.Generator(device=device).manual_seed(ACT_SEED))
        obs_k = observations.expand(k, *observations.shape)
        latents = prior_latents((*obs_k.shape[:-1], self.vae.latent_dim), fixed, observations)
        candidates = self.actor(obs_k, self.vae.decode(obs_k, latents))
        best = q_at_actions(self.q1, obs_k, candidates, True).argmax(dim=0)
        index = best.unsqueeze(0).unsqueeze(-1).expand(1, *candidates.shape[1:])
        return candidates.gather(0, index).squeeze(0)
