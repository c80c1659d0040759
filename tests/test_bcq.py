"""BCQ-MA: its losses against numbers computed by hand, the discrete filter, the targets'
wiring (filtered argmax; max over sampled candidates, then the mixer) and the acting rules."""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from torch import nn

from omiga_pl.algos.bcq import BCQConfig, BCQModule, noise_seed
from omiga_pl.config import load_config
from omiga_pl.data.batch import Batch
from omiga_pl.errors import ConfigError
from omiga_pl.losses.bcq import (
    bcq_allowed_actions,
    bcq_continuous_losses,
    bcq_discrete_losses,
    behaviour_log_probs,
    filtered_argmax,
    soft_clipped_double_q,
    vae_loss,
)
from omiga_pl.nets import QMixer

T = torch.tensor
CONF = Path(__file__).resolve().parent.parent / "conf"


# ----------------------------------------------------------------------- the discrete filter
def test_filter_keeps_relative_probability_above_threshold():
    # probabilities proportional to [4, 2, 1, 3]: ratios to the max = [1, .5, .25, .75]
    logits = T([4.0, 2.0, 1.0, 3.0]).log()
    assert bcq_allowed_actions(logits, None, 0.3).tolist() == [True, True, False, True]
    assert bcq_allowed_actions(logits, None, 0.6).tolist() == [True, False, False, True]
    # tau = 0 keeps everything (plain Q-learning)
    assert bcq_allowed_actions(logits, None, 0.0).all()


def test_filter_ratio_is_to_the_best_available_action():
    # action 0 (the most likely) unavailable: ratios to 3 = [-, 2/3, 1/3, 1]
    logits = T([4.0, 2.0, 1.0, 3.0]).log()
    avail = T([False, True, True, True])
    assert bcq_allowed_actions(logits, avail, 0.3).tolist() == [False, True, True, True]
    assert bcq_allowed_actions(logits, avail, 0.5).tolist() == [False, True, False, True]
    # never empty: the best available action has ratio 1 > tau for any tau < 1
    assert bcq_allowed_actions(logits, avail, 0.999).tolist() == [False, False, False, True]


def test_filtered_argmax():
    q = T([[5.0, 1.0, 9.0, 3.0]])
    assert filtered_argmax(q, T([[True, True, False, True]])).tolist() == [0]
    assert filtered_argmax(q, T([[False, True, False, True]])).tolist() == [3]


def test_behaviour_log_probs_by_hand():
    # logits log[1, 3, 4]: probabilities [1/8, 3/8, 4/8]; over {0, 1} only: [1/4, 3/4]
    logits = T([1.0, 3.0, 4.0]).log().view(1, 1, 3)
    actions = T([[1]])
    assert behaviour_log_probs(logits, actions).item() == pytest.approx(math.log(3 / 8))
    avail = T([True, True, False]).view(1, 1, 3)
    assert behaviour_log_probs(logits, actions, avail).item() == pytest.approx(math.log(3 / 4))


# ---------------------------------------------------------------------- losses, by hand
def test_discrete_losses_by_hand():
    # y = r + gamma mask next = [1 + .5 * 1 * 4, 2 + 0] = [3, 2]
    # q loss = ((2 - 3)^2 + (5 - 2)^2) / 2 = 5
    # behaviour: -mean(log_probs) = 1.25; mean logits^2 = (1+1+4+0+0+0+9+1)/8 = 2 -> + .01 * 2
    losses = bcq_discrete_losses(
        q_total=T([2.0, 5.0]),
        next_total_target=T([4.0, 10.0]),
        rewards=T([1.0, 2.0]),
        masks=T([1.0, 0.0]),
        gamma=0.5,
        log_probs=T([[-1.0, -2.0], [-0.5, -1.5]]),
        logits=T([[[1.0, -1.0], [2.0, 0.0]], [[0.0, 0.0], [3.0, 1.0]]]),
        logit_reg=0.01,
    )
    assert set(losses.named) == {"q", "behaviour"}
    assert losses.named["q"].item() == pytest.approx(5.0)
    assert losses.named["behaviour"].item() == pytest.approx(1.27)
    assert losses.diagnostics["td_target_mean"].item() == pytest.approx(2.5)


def test_soft_clipped_double_q_by_hand():
    # .75 * min(1, 3) + .25 * max(1, 3) = 1.5; lmbda = 1 is the plain clipped double Q
    assert soft_clipped_double_q(T(1.0), T(3.0), 0.75).item() == pytest.approx(1.5)
    assert soft_clipped_double_q(T(1.0), T(3.0), 1.0).item() == pytest.approx(1.0)


def test_vae_loss_by_hand():
    # recon = (0.5 - 0)^2 = .25
    # KL elements -0.5 (1 + 2 log_std - mu^2 - std^2):
    #   mu = 1, log_std = 0:     -0.5 (1 + 0 - 1 - 1) = 0.5
    #   mu = 0, log_std = log 2: -0.5 (1 + 2 log 2 - 0 - 4) = 1.5 - log 2
    # KL = mean = (2 - log 2) / 2; loss = .25 + .5 KL
    kl = (2.0 - math.log(2.0)) / 2
    loss, recon, kl_out = vae_loss(T([[[0.5]]]), T([[[0.0]]]), T([[[1.0, 0.0]]]), T([[[0.0, math.log(2.0)]]]))
    assert recon.item() == pytest.approx(0.25)
    assert kl_out.item() == pytest.approx(kl)
    assert loss.item() == pytest.approx(0.25 + 0.5 * kl)
    assert loss.item() == pytest.approx(0.57671320, abs=1e-7)


def test_continuous_losses_by_hand():
    # y = [3, 2] as above; q = mse(q1) + mse(q2) = (1 + 9)/2 + (0 + 1)/2 = 5.5
    # actor = -mean([1, 2, 3, 6]) = -3
    losses = bcq_continuous_losses(
        q1_total=T([2.0, 5.0]),
        q2_total=T([3.0, 3.0]),
        next_total_target=T([4.0, 10.0]),
        rewards=T([1.0, 2.0]),
        masks=T([1.0, 0.0]),
        gamma=0.5,
        actor_q=T([[1.0, 2.0], [3.0, 6.0]]),
        reconstruction=T([[[0.5]]]),
        actions=T([[[0.0]]]),
        latent_mean=T([[[1.0, 0.0]]]),
        latent_log_std=T([[[0.0, math.log(2.0)]]]),
    )
    assert set(losses.named) == {"q", "actor", "vae"}
    assert losses.named["q"].item() == pytest.approx(5.5)
    assert losses.named["actor"].item() == pytest.approx(-3.0)
    assert losses.named["vae"].item() == pytest.approx(0.57671320, abs=1e-7)


# ------------------------------------------------------------- stubs for the wiring tests
class Scale(nn.Module):
    """``scale * x`` (a local Q whose values are its input)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x


class Constant(nn.Module):
    """The same [N, A] output for every observation."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(*x.shape[:-2], *self.value.shape)


class LastFeature(nn.Module):
    """``scale * a + offset`` of the last input feature (the action, when A = 1)."""

    def __init__(self, scale: float, offset: float) -> None:
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x[..., -1:] + self.offset


class FixedMixer(nn.Module):
    """``sum_i w_i v_i + b`` with constant weights."""

    def __init__(self, weights: list[float], bias: float) -> None:
        super().__init__()
        self.weights, self.bias = T(weights), bias

    def mix(self, values: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        return (values * self.weights).sum(-1) + self.bias


class PassThrough(nn.Module):
    """An actor that does not perturb."""

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return actions


def bcq_module(action_type: str, n_agents: int, obs_dim: int, action_dim: int, **algo) -> BCQModule:
    dims = dict(
        n_agents=n_agents, obs_dim=obs_dim, state_dim=2, action_type=action_type, action_dim=action_dim
    )
    torch.manual_seed(0)
    return BCQModule(dims, asdict(BCQConfig(hidden_sizes=[8], vae_hidden_sizes=[8], **algo)))


# --------------------------------------------------------------- discrete target and acting
def discrete_stubbed(**algo) -> BCQModule:
    # One agent, 3 actions, obs = the online Q values; target Q = 10 * obs;
    # behaviour probabilities [.5, .1, .4] everywhere (ratios [1, .2, .8]).
    module = bcq_module("discrete", 1, 3, 3, **algo)
    module.q, module.q_target = Scale(1.0), Scale(10.0)
    module.behaviour.logits_net = Constant(T([[0.5, 0.1, 0.4]]).log())
    module.mixer = module.mixer_target = FixedMixer([1.0], 0.0)
    return module


def discrete_batch() -> Batch:
    return Batch(
        observations=T([[[4.0, 5.0, 6.0]]]),
        states=torch.zeros(1, 2),
        actions=T([[1]]),
        rewards=T([1.0]),
        masks=T([1.0]),
        next_observations=T([[[1.0, 3.0, 2.0]]]),
        next_states=torch.zeros(1, 2),
        avail_actions=torch.ones(1, 1, 3, dtype=torch.bool),
        next_avail_actions=torch.ones(1, 1, 3, dtype=torch.bool),
    )


def test_discrete_target_uses_target_q_at_the_filtered_online_argmax():
    # At o' the online Q is [1, 3, 2]; tau .3 keeps {0, 2} -> a* = 2 (not 1, the
    # unconstrained argmax); target Q there = 10 * 2 = 20; y = 1 + .5 * 20 = 11;
    # Q_tot = Q(o)[a = 1] = 5 -> loss (5 - 11)^2 = 36.
    losses = discrete_stubbed(gamma=0.5).compute_losses(discrete_batch())
    assert losses.diagnostics["td_target_mean"].item() == pytest.approx(11.0)
    assert losses.named["q"].item() == pytest.approx(36.0)
    # 2 of the 3 available actions kept
    assert losses.diagnostics["kept_action_fraction"].item() == pytest.approx(2 / 3)
    # tau 0: a* = 1, y = 1 + .5 * 30 = 16, loss (5 - 16)^2 = 121
    losses = discrete_stubbed(gamma=0.5, tau_bcq=0.0).compute_losses(discrete_batch())
    assert losses.named["q"].item() == pytest.approx(121.0)


def test_discrete_target_respects_next_availability():
    # action 2 unavailable at o': ratios to the best available (.5) = [1, .2, -] -> a* = 0
    # y = 1 + .5 * 10 = 6; loss (5 - 6)^2 = 1
    batch = discrete_batch()
    batch.next_avail_actions = T([[[True, True, False]]])
    losses = discrete_stubbed(gamma=0.5).compute_losses(batch)
    assert losses.named["q"].item() == pytest.approx(1.0)


def test_discrete_acting_is_the_filtered_available_argmax():
    module = discrete_stubbed()
    obs = T([[[1.0, 3.0, 2.0]]])
    assert module.act(obs, torch.ones(1, 1, 3, dtype=torch.bool)).tolist() == [[2]]
    assert module.act(obs, None).tolist() == [[2]]
    assert module.act(obs, T([[[True, True, False]]])).tolist() == [[0]]
    assert discrete_stubbed(tau_bcq=0.0).act(obs, None).tolist() == [[1]]


# ------------------------------------------------------------- continuous target and acting
# Candidates decoded per agent (K = 3, N = 2, A = 1), whatever the latents.
CANDIDATES = T([[-0.5, 0.1], [0.2, -0.3], [0.9, 0.4]]).view(3, 1, 2, 1)


def continuous_stubbed(**algo) -> BCQModule:
    # Q1 = 2a, Q2 = 1 - a (online and target); no perturbation in the target; mixer
    # w = [1, 2], b = .5; the decoder returns CANDIDATES for K-fold observations.
    module = bcq_module("continuous", 2, 3, 1, n_target_samples=3, n_act_samples=3, **algo)
    module.q1 = module.q1_target = LastFeature(2.0, 0.0)
    module.q2 = module.q2_target = LastFeature(-1.0, 1.0)
    module.mixer = module.mixer_target = FixedMixer([1.0, 2.0], 0.5)
    module.actor_target = PassThrough()
    real_decode = module.vae.decode

    def decode(obs: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        if obs.dim() == 4:
            return CANDIDATES.expand(*obs.shape[:-1], 1)
        return real_decode(obs, latents)

    module.vae.decode = decode
    return module


def continuous_batch() -> Batch:
    return Batch(
        observations=torch.zeros(1, 2, 3),
        states=torch.zeros(1, 2),
        actions=T([[[0.5], [0.0]]]),
        rewards=T([1.0]),
        masks=T([1.0]),
        next_observations=torch.ones(1, 2, 3),
        next_states=torch.zeros(1, 2),
    )


def test_continuous_target_max_over_candidates_per_agent_then_mixed():
    # .75 min + .25 max of (2a, 1 - a) per candidate:
    #   agent 0, a = -.5, .2, .9: (-1, 1.5) -> -.375; (.4, .8) -> .5; (1.8, .1) -> .525
    #   agent 1, a = .1, -.3, .4: (.2, .9) -> .375; (-.6, 1.3) -> -.125; (.8, .6) -> .65
    # next total = 1 * .525 + 2 * .65 + .5 = 2.325; y = 1 + .5 * 2.325 = 2.1625
    # Q1_tot = 1 * (2 * .5) + 2 * (2 * 0) + .5 = 1.5; Q2_tot = 1 * .5 + 2 * 1 + .5 = 3
    # loss = (1.5 - 2.1625)^2 + (3 - 2.1625)^2 = 1.1403125
    losses = continuous_stubbed(gamma=0.5).compute_losses(continuous_batch())
    assert losses.diagnostics["td_target_mean"].item() == pytest.approx(2.1625)
    assert losses.named["q"].item() == pytest.approx(1.1403125)


def test_per_agent_max_then_a_monotone_mixer_is_the_max_over_sampled_joint_actions():
    # K = 3 candidates for each of N = 2 agents: 9 joint actions. QMIX is monotone in each
    # agent's value, so mixing the per-agent maxima gives the best of the 9.
    torch.manual_seed(3)
    mixer = QMixer(state_dim=4, n_agents=2)
    values, states = torch.randn(3, 5, 2), torch.randn(5, 4)
    per_agent = mixer.mix(values.max(0).values, states)
    joint = torch.stack(
        [
            mixer.mix(torch.stack([values[i, :, 0], values[j, :, 1]], -1), states)
            for i, j in itertools.product(range(3), repeat=2)
        ]
    )
    torch.testing.assert_close(per_agent, joint.max(0).values)


def test_continuous_acting_picks_the_best_candidate_deterministically_without_the_global_rng():
    module = continuous_stubbed()
    obs = torch.zeros(1, 2, 3)
    rng = torch.get_rng_state()
    # Q1 = 2a: the largest candidate per agent; the real (untrained) actor moves it by <= phi.
    real_candidates = module.act(obs)
    module.actor = PassThrough()
    assert torch.equal(module.act(obs), T([[[0.9], [0.4]]]))
    assert torch.equal(torch.get_rng_state(), rng)
    assert (real_candidates - T([[[0.9], [0.4]]])).abs().max() <= module.cfg.phi + 1e-6


def test_real_continuous_acting_is_deterministic_and_in_range():
    module = bcq_module("continuous", 2, 3, 2)
    obs = torch.randn(4, 2, 3)
    rng = torch.get_rng_state()
    first, second = module.act(obs), module.act(obs)
    assert torch.equal(first, second) and first.shape == (4, 2, 2) and first.abs().max() <= 1
    assert torch.equal(torch.get_rng_state(), rng)


def test_training_noise_is_a_function_of_the_step_only():
    # Same step -> same noise and losses; the global RNG is not consumed.
    module = bcq_module("continuous", 2, 3, 2)
    batch = continuous_batch()
    batch.actions = torch.rand(1, 2, 2) * 2 - 1
    rng = torch.get_rng_state()
    first, second = module.compute_losses(batch), module.compute_losses(batch)
    assert torch.equal(torch.get_rng_state(), rng)
    for name in first.named:
        assert torch.equal(first.named[name], second.named[name]), name
    assert noise_seed(0, 0, 1) != noise_seed(0, 0, 2) != noise_seed(0, 1, 2)


def test_perturbation_is_bounded_by_phi():
    module = bcq_module("continuous", 2, 3, 2, phi=0.1)
    nn.init.constant_(module.actor.net.net[-1].bias, 100.0)  # saturate the tanh
    actions = torch.zeros(4, 2, 2)
    torch.testing.assert_close(module.actor(torch.randn(4, 2, 3), actions), torch.full((4, 2, 2), 0.1))


def test_qmix_mixer_option_trains():
    module = bcq_module("discrete", 1, 3, 3, mixer="qmix")
    assert isinstance(module.mixer, QMixer)
    batch = discrete_batch()
    losses = module.compute_losses(batch)
    assert torch.isfinite(losses.total)


# -------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "override, key",
    [
        ("algo.tau_bcq=1.0", "algo.tau_bcq"),
        ("algo.tau_bcq=-0.1", "algo.tau_bcq"),
        ("algo.mixer=vdn", "algo.mixer"),
        ("algo.lmbda=1.5", "algo.lmbda"),
        ("algo.phi=0", "algo.phi"),
        ("algo.n_target_samples=0", "algo.n_target_samples"),
        ("algo.logit_reg=-1", "algo.logit_reg"),
        ("algo.vae_hidden_sizes=[]", "algo.vae_hidden_sizes"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=rf"config: key '{key}': expected"):
        load_config([CONF / "smac.yaml"], ["algo.name=bcq", override])
