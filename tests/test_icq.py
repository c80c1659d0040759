"""ICQ's losses against numbers computed by hand, and the wiring that feeds them."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from conftest import make_episodes
from test_algorithms import random_batch, tiny_dims

from omiga_pl.algos.icq import ICQConfig, ICQModule, mixer_slopes
from omiga_pl.config import load_config
from omiga_pl.data.storage import TransitionStorage
from omiga_pl.errors import ConfigError
from omiga_pl.losses.icq import (
    batch_softmax_weights,
    credit_shares,
    expected_q,
    icq_critic_target,
    icq_losses,
)
from omiga_pl.nets import Mixer, QMixer

SMAC = Path(__file__).resolve().parent.parent / "conf" / "smac.yaml"
T = torch.tensor
LN3 = math.log(3.0)


def make_module(action_type: str = "discrete", **algo) -> ICQModule:
    torch.manual_seed(0)
    config = ICQConfig(hidden_sizes=[16, 16], mixer_hidden=8, **algo)
    return ICQModule(tiny_dims(action_type), asdict(config))


def test_batch_softmax_weights_by_hand():
    # beta = 1: exp([ln 3, 0]) = [3, 1] -> softmax [3/4, 1/4] -> times B = 2: [1.5, 0.5].
    torch.testing.assert_close(batch_softmax_weights(T([LN3, 0.0]), 1.0), T([1.5, 0.5]))
    # [B, N]: each agent's column separately; beta = 2 halves the exponent.
    weights = batch_softmax_weights(T([[0.0, 2 * LN3], [2 * LN3, 0.0]]), 2.0)
    torch.testing.assert_close(weights, T([[0.5, 1.5], [1.5, 0.5]]))
    # A huge temperature gives weights ~ 1: the target becomes plain SARSA.
    torch.testing.assert_close(batch_softmax_weights(T([5.0, -3.0]), 1e9), T([1.0, 1.0]))


def test_critic_target_by_hand():
    # next Qt_tot = [ln 3, 0], beta 1 -> weights [1.5, 0.5];
    # y = [1 + .5 * 1 * 1.5 * ln 3, 2 + .5 * 0 * ...] = [1 + .75 ln 3, 2].
    y, weights = icq_critic_target(T([1.0, 2.0]), T([1.0, 0.0]), T([LN3, 0.0]), gamma=0.5, beta=1.0)
    torch.testing.assert_close(y, T([1.0 + 0.75 * LN3, 2.0]))
    torch.testing.assert_close(weights, T([1.5, 0.5]))
    assert not y.requires_grad


def test_credit_shares_and_baseline_by_hand():
    torch.testing.assert_close(credit_shares(T([[1.0, 3.0], [2.0, 2.0]])), T([[0.25, 0.75], [0.5, 0.5]]))
    # The baseline ignores an unavailable action's value when its probability is 0.
    torch.testing.assert_close(expected_q(T([[[0.5, 0.5, 0.0]]]), T([[[1.0, 3.0, 100.0]]])), T([[2.0]]))


def hand_losses():
    return icq_losses(
        q_total=T([2.0, 1.0], requires_grad=True),
        targets=T([1.0, 3.0]),
        log_probs=T([[-1.0, -2.0], [-0.5, -4.0]], requires_grad=True),
        advantages=T([[0.0, LN3], [LN3, 0.0]]),
        credit=T([[0.25, 0.75], [0.5, 0.5]]),
        actor_beta=1.0,
    )


def test_critic_loss_by_hand():
    # ((2 - 1)^2 + (1 - 3)^2) / 2 = 2.5
    assert hand_losses().named["q"].item() == pytest.approx(2.5)


def test_actor_loss_by_hand():
    # softmax weights (per agent over the batch): [[.5, 1.5], [1.5, .5]];
    # times credit [[.25, .75], [.5, .5]] = [[.125, 1.125], [.75, .25]];
    # loss = -(.125 * -1 + 1.125 * -2 + .75 * -.5 + .25 * -4) / 4 = 3.75 / 4 = 0.9375.
    losses = hand_losses()
    assert losses.named["policy"].item() == pytest.approx(0.9375)
    assert losses.diagnostics["policy_weight_max"].item() == pytest.approx(1.5)


def test_mixer_slopes_are_the_linear_weights_and_qmix_local_slope():
    gen = torch.Generator().manual_seed(0)
    states, values = torch.randn(5, 6, generator=gen), torch.randn(5, 2, generator=gen)
    torch.manual_seed(0)
    linear = Mixer(6, 2, 8)
    torch.testing.assert_close(mixer_slopes(linear, values, states), linear(states)[0].detach())
    qmix = QMixer(6, 2, 8)
    slopes = mixer_slopes(qmix, values, states)
    assert (slopes >= 0).all() and not slopes.requires_grad
    # Central finite difference of Q_tot in agent 1's value.
    h = 1e-3
    step = torch.zeros_like(values)
    step[:, 1] = h
    with torch.no_grad():
        numeric = (qmix.mix(values + step, states) - qmix.mix(values - step, states)) / (2 * h)
    torch.testing.assert_close(slopes[:, 1], numeric, rtol=1e-2, atol=1e-3)
    # No parameter received a gradient.
    assert all(p.grad is None for p in qmix.parameters())


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_target_uses_next_dataset_actions_only(action_type):
    module = make_module(action_type)
    batch = random_batch(action_type)
    losses = module.compute_losses(batch)
    # Recompute y from the target nets at (o', a'_data), by the formula.
    with torch.no_grad():
        if action_type == "continuous":
            next_in = torch.cat([batch.next_observations, batch.next_actions], -1)
            next_q = module.q_target(next_in).squeeze(-1)
        else:
            next_q = module.q_target(batch.next_observations).gather(-1, batch.next_actions.unsqueeze(-1))
            next_q = next_q.squeeze(-1)
        w, b = module.mixer_target(batch.next_states)
        next_total = (w * next_q).sum(-1) + b
        weights = len(next_total) * torch.softmax(next_total / 1000.0, 0)
        y = batch.rewards + 0.99 * batch.masks * weights * next_total
    assert losses.diagnostics["td_target_mean"].item() == pytest.approx(y.mean().item(), rel=1e-6)
    # Other next actions give another target: the next action really is the dataset's.
    batch.next_actions = batch.actions
    assert module.compute_losses(batch).diagnostics["td_target_mean"] != losses.diagnostics["td_target_mean"]


def test_discrete_actor_wiring_by_formula():
    module = make_module("discrete", actor_beta=0.5)
    batch = random_batch("discrete")
    losses = module.compute_losses(batch)
    with torch.no_grad():
        q_all = module.q(batch.observations)
        q_taken = q_all.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        logits = module.policy.logits(batch.observations, batch.avail_actions)  # masked: the default
        log_pi = torch.log_softmax(logits, -1)
        advantages = q_taken - (log_pi.exp() * q_all).sum(-1)
        w, _ = module.mixer(batch.states)
        credit = w / w.sum(-1, keepdim=True)
        weights = credit * len(advantages) * torch.softmax(advantages / 0.5, 0)
        expected = -(weights * log_pi.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)).mean()
    assert losses.named["policy"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_continuous_actor_weighs_mixer_weighted_q():
    module = make_module("continuous")
    assert module.actor_beta == 100.0
    batch = random_batch("continuous")
    losses = module.compute_losses(batch)
    with torch.no_grad():
        q = module.q(torch.cat([batch.observations, batch.actions], -1)).squeeze(-1)
        w, _ = module.mixer(batch.states)
        weights = len(q) * torch.softmax(w * q / 100.0, 0)
        log_probs, _ = module.policy.log_prob_and_entropy(batch.observations, batch.actions)
        expected = -(weights * log_probs).mean()
    assert losses.named["policy"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_actor_beta_default_per_action_type_and_override():
    assert make_module("discrete").actor_beta == 0.1
    assert make_module("continuous", actor_beta=3.0).actor_beta == 3.0


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_qmix_mixer_keeps_gradients_in_their_groups(action_type):
    module = make_module(action_type, mixer="qmix")
    assert isinstance(module.mixer, QMixer)
    losses = module.compute_losses(random_batch(action_type))
    groups = module.param_groups()
    for name, loss in losses.named.items():
        for group, params in groups.items():
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            touched = any(g is not None and g.abs().sum() > 0 for g in grads)
            assert touched == (group == name), (name, group)


def test_storage_gathers_next_dataset_actions_within_episodes():
    data = make_episodes([3, 2], n_agents=2, obs_dim=4, state_dim=6, n_actions=5, seed=3)
    batch = TransitionStorage(data).gather(torch.arange(5))
    actions = torch.from_numpy(data.actions)
    # Transitions 0..4; episodes [0, 1, 2] and [3, 4]; an episode's last keeps its own action.
    torch.testing.assert_close(batch.next_actions, actions[[1, 2, 2, 4, 4]])


@pytest.mark.parametrize(
    "override, message",
    [
        ("algo.critic_beta=0", "key 'algo.critic_beta': expected a positive value, found 0"),
        ("algo.actor_beta=-1", "key 'algo.actor_beta': expected a positive value, found -1"),
        ("algo.mixer=vdn", "key 'algo.mixer': expected one of ['linear', 'qmix'], found 'vdn'"),
    ],
)
def test_bad_values_are_refused_by_name(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config([SMAC], ["algo.name=icq", override])
    assert message in str(caught.value)
