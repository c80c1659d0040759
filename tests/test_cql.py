"""CQL-MA's losses against numbers computed by hand, its acting rule and its resumable noise."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from test_algorithms import random_batch, tiny_dims

from omiga_pl.algos.base import call_detached
from omiga_pl.algos.cql import CQLConfig, CQLModule
from omiga_pl.config import load_config
from omiga_pl.errors import ConfigError
from omiga_pl.losses.common import conservative_penalty_discrete, conservative_penalty_sampled
from omiga_pl.losses.cql import (
    cql_critic_loss,
    double_q_next_values,
    entropy_temperature_loss,
    sac_actor_loss,
)
from omiga_pl.nets import QMixer, tanh_gaussian_sample
from omiga_pl.nets.policy import tanh_gaussian_log_prob

SMAC = Path(__file__).resolve().parent.parent / "conf" / "smac.yaml"
T = torch.tensor


def make_module(action_type: str = "discrete", **algo) -> CQLModule:
    torch.manual_seed(0)
    config = CQLConfig(hidden_sizes=[16, 16], mixer_hidden=8, cql_n_actions=3, **algo)
    return CQLModule(tiny_dims(action_type), asdict(config))


def test_discrete_penalty_by_hand():
    # Available actions 0 and 1: logsumexp(1, 2) = 2 + ln(1 + e^-1); minus Q at action 1 (2).
    q_all, avail = T([[[1.0, 2.0, 3.0]]]), T([[[True, True, False]]])
    penalty = conservative_penalty_discrete(q_all, T([[2.0]]), avail)
    assert penalty.item() == pytest.approx(math.log(1 + math.exp(-1)))
    # Without a mask every action counts: logsumexp(1, 2, 3) - 2.
    expected = math.log(math.e + math.e**2 + math.e**3) - 2
    assert conservative_penalty_discrete(q_all, T([[2.0]])).item() == pytest.approx(expected)


def test_sampled_penalty_by_hand():
    # logsumexp(Q_k - log mu_k) - Q_data: samples Q = [0, ln 2], densities 1 -> ln 3 - 1;
    # with log mu = [0, ln 2] the second sample is discounted: ln(1 + 1) - 1.
    q, data = T([[[0.0, math.log(2)]]]), T([[1.0]])
    assert conservative_penalty_sampled(q, T([[[0.0, 0.0]]]), data).item() == pytest.approx(math.log(3) - 1)
    log_mu = T([[[0.0, math.log(2)]]])
    assert conservative_penalty_sampled(q, log_mu, data).item() == pytest.approx(math.log(2) - 1)


def test_double_q_by_hand():
    online, target = T([[[1.0, 5.0, 3.0]]]), T([[[10.0, 20.0, 30.0]]])
    # Online argmax over the available actions {0, 2} is 2: the target's value there, 30.
    assert double_q_next_values(online, target, T([[[True, False, True]]])).item() == 30.0
    assert double_q_next_values(online, target).item() == 20.0


def test_critic_loss_by_hand():
    # td = ((1 - 0)^2 + (2 - 4)^2) / 2 = 2.5; penalty summed over agents [1.5, 2.5], mean 2;
    # loss = 2.5 + 0.5 * 2 = 3.5.
    loss, diagnostics = cql_critic_loss(T([1.0, 2.0]), T([0.0, 4.0]), T([[0.5, 1.0], [2.0, 0.5]]), 0.5)
    assert loss.item() == pytest.approx(3.5)
    assert diagnostics["td_loss"].item() == pytest.approx(2.5)
    assert diagnostics["cql_penalty"].item() == pytest.approx(2.0)


def test_actor_and_temperature_losses_by_hand():
    # alpha 0.5: per transition 0.5 * sum_i log pi - Q_tot = [0.5 * -3 - 1, 0.5 * -1 - 3];
    # mean (-2.5 - 3.5) / 2 = -3.
    log_probs = T([[-1.0, -2.0], [0.0, -1.0]])
    assert sac_actor_loss(T([1.0, 3.0]), log_probs, T(0.5)).item() == pytest.approx(-3.0)
    # -mean(log_alpha (log pi + H)) with log_alpha .5, H = -2: -(.5 * ((-1 - 2) + (-3 - 2))) / 2 = 2.
    log_alpha = T(0.5, requires_grad=True)
    loss = entropy_temperature_loss(log_alpha, T([[-1.0, -3.0]]), -2.0)
    assert loss.item() == pytest.approx(2.0)
    # Entropy above target (log pi below -H): d loss / d log_alpha = 4 > 0, alpha goes down.
    loss.backward()
    assert log_alpha.grad.item() == pytest.approx(4.0)


def test_tanh_gaussian_sample_density_matches_the_policy_density():
    gen = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(4, 2, 3, generator=gen), torch.rand(4, 2, 3, generator=gen) - 1
    noise = torch.randn(5, 4, 2, 3, generator=gen)
    actions, log_probs = tanh_gaussian_sample(mean, log_std, noise)
    assert actions.shape == (5, 4, 2, 3) and log_probs.shape == (5, 4, 2)
    torch.testing.assert_close(
        log_probs, tanh_gaussian_log_prob(mean, log_std, actions, eps=1e-6), rtol=1e-4, atol=1e-4
    )


def test_discrete_losses_by_formula():
    module = make_module("discrete")
    batch = random_batch("discrete")
    with_penalty = module.compute_losses(batch)
    module.cfg.cql_alpha = 0.0
    without = module.compute_losses(batch)
    penalty = with_penalty.diagnostics["cql_penalty"]
    torch.testing.assert_close(with_penalty.named["q"] - without.named["q"], penalty)
    with torch.no_grad():
        q_all = module.q(batch.observations)
        taken = q_all.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        lse = torch.logsumexp(q_all.masked_fill(~batch.avail_actions, -math.inf), -1)
        online = module.q(batch.next_observations).masked_fill(~batch.next_avail_actions, -math.inf)
        next_q = (
            module.q_target(batch.next_observations).gather(-1, online.argmax(-1, keepdim=True)).squeeze(-1)
        )
        w, b = module.mixer_target(batch.next_states)
        y = batch.rewards + 0.99 * batch.masks * ((w * next_q).sum(-1) + b)
    assert penalty.item() == pytest.approx((lse - taken).sum(-1).mean().item(), rel=1e-6)
    assert without.diagnostics["td_target_mean"].item() == pytest.approx(y.mean().item(), rel=1e-6)


def test_discrete_acting_is_greedy_on_local_q_over_available_actions():
    module = make_module("discrete")
    obs = torch.randn(7, 2, 4)
    avail = torch.rand(7, 2, 3) < 0.6
    avail[..., 1] = True
    with torch.no_grad():
        expected = module.q(obs).masked_fill(~avail, -math.inf).argmax(-1)
    torch.testing.assert_close(module.act(obs, avail), expected)
    assert not hasattr(module, "policy")
    assert set(module.param_groups()) == {"q"}


def test_continuous_groups_and_noise_are_deterministic_and_leave_the_global_rng_alone():
    module = make_module("continuous")
    assert set(module.param_groups()) == {"q", "policy", "entropy"}
    batch = random_batch("continuous")
    rng = torch.get_rng_state()
    first, second = module.compute_losses(batch), module.compute_losses(batch)
    assert torch.equal(torch.get_rng_state(), rng)
    for name in first.named:
        assert torch.equal(first.named[name], second.named[name]), name
    # The noise is the base's: a pure function of (seed, rank, update index), tested in
    # tests/test_algorithms.py.
    first_draw = torch.rand(3, generator=module.noise_generator("cpu"))
    assert torch.equal(first_draw, torch.rand(3, generator=module.noise_generator("cpu")))


def test_continuous_penalty_is_wired_into_the_critic_loss():
    module = make_module("continuous")
    batch = random_batch("continuous")
    losses = module.compute_losses(batch)
    assert losses.diagnostics["cql_penalty"] > 0  # logsumexp over 3k samples exceeds Q(data) here
    q_params = module.param_groups()["q"]
    with_penalty = torch.autograd.grad(losses.named["q"], q_params)
    module.cfg.cql_alpha = 0.0
    without = module.compute_losses(batch)
    torch.testing.assert_close(
        losses.named["q"] - without.named["q"], losses.diagnostics["cql_penalty"], rtol=1e-5, atol=1e-6
    )
    td_only = torch.autograd.grad(without.named["q"], q_params)
    assert sum((a - b).abs().sum() for a, b in zip(with_penalty, td_only)) > 0


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_qmix_mixer_keeps_gradients_in_their_groups(action_type):
    module = make_module(action_type, mixer="qmix")
    assert isinstance(module.mixer, QMixer)
    losses = module.compute_losses(random_batch(action_type))
    for name, loss in losses.named.items():
        for group, params in module.param_groups().items():
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            touched = any(g is not None and g.abs().sum() > 0 for g in grads)
            assert touched == (group == name), (name, group)


def test_call_detached_reaches_mix_and_sends_gradient_to_values_only():
    torch.manual_seed(0)
    mixer = QMixer(6, 2, 8)
    values = torch.randn(5, 2, requires_grad=True)
    total = call_detached(mixer, values, torch.randn(5, 6), method="mix")
    total.sum().backward()
    assert values.grad is not None and values.grad.abs().sum() > 0
    assert all(p.grad is None for p in mixer.parameters())


@pytest.mark.parametrize(
    "override, message",
    [
        ("algo.cql_alpha=-1", "key 'algo.cql_alpha': expected a non-negative value, found -1.0"),
        ("algo.cql_n_actions=0", "key 'algo.cql_n_actions': expected a positive value, found 0"),
        ("algo.mixer=vdn", "key 'algo.mixer': expected one of ['linear', 'qmix'], found 'vdn'"),
    ],
)
def test_bad_values_are_refused_by_name(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config([SMAC], ["algo.name=cql", override])
    assert message in str(caught.value)
