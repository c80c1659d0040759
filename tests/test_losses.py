"""OMIGA's losses against numbers computed by hand, and where their gradients go."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch

from omiga_pl.algos.omiga import OmigaModule
from omiga_pl.config import AlgoConfig
from omiga_pl.data.batch import Batch
from omiga_pl.losses.omiga import omiga_losses, regularised_advantage

T = torch.tensor


def tiny_inputs(**changes):
    """B = 2 transitions, N = 2 agents; every number chosen to be easy by hand."""
    inputs = dict(
        q_taken=T([[1.0, 2.0], [3.0, 0.0]]),
        weights=T([[1.0, 0.5], [2.0, 1.0]]),
        bias=T([0.5, -1.0]),
        q_target_taken=T([[2.0, 1.0], [4.0, 2.0]]),
        weights_target=T([[1.0, 2.0], [0.5, 1.0]]),
        values=T([[1.0, 1.0], [0.0, 3.0]]),
        next_values_target=T([[2.0, 4.0], [1.0, 1.0]]),
        next_weights_target=T([[0.5, 0.5], [1.0, 2.0]]),
        next_bias_target=T([1.0, 0.0]),
        log_probs=T([[-1.0, -2.0], [-0.5, -1.0]]),
        rewards=T([1.0, 2.0]),
        masks=T([1.0, 0.0]),
        alpha=2.0,
        gamma=0.5,
    )
    inputs.update(changes)
    return inputs


def test_q_loss_by_hand():
    # Q_tot = [1*1 + .5*2 + .5, 2*3 + 1*0 - 1] = [2.5, 5]
    # y = [1 + .5*1*(.5*2 + .5*4 + 1), 2 + .5*0*(...)] = [3, 2]
    # loss = ((2.5-3)^2 + (5-2)^2) / 2 = 4.625
    losses = omiga_losses(**tiny_inputs())
    assert losses.q_loss.item() == pytest.approx(4.625)
    assert losses.diagnostics["td_target_mean"].item() == pytest.approx(2.5)


def test_v_loss_by_hand():
    # z = wt (Qt - V) / alpha = [[.5, 0], [1, -.5]]; m = max(1, -1) = 1
    # element = exp(z - m) + exp(-m) wt V / alpha
    e = math.exp
    elements = [
        e(-0.5) + e(-1) * 1 * 1 / 2,
        e(-1.0) + e(-1) * 2 * 1 / 2,
        e(0.0) + e(-1) * 0.5 * 0 / 2,
        e(-1.5) + e(-1) * 1 * 3 / 2,
    ]
    losses = omiga_losses(**tiny_inputs())
    assert losses.v_loss.item() == pytest.approx(sum(elements) / 4)
    assert losses.v_loss.item() == pytest.approx(0.82529465, abs=1e-7)


def test_policy_loss_by_hand():
    # weights exp(z) = [[e^.5, 1], [e^1, e^-.5]]; loss = -mean(weights * log_probs)
    e = math.exp
    expected = -(e(0.5) * -1 + 1 * -2 + e(1) * -0.5 + e(-0.5) * -1) / 4
    losses = omiga_losses(**tiny_inputs())
    assert losses.policy_loss.item() == pytest.approx(expected)
    assert losses.policy_loss.item() == pytest.approx(1.40359821, abs=1e-7)


def test_stabiliser_floor_and_clamp():
    # All z very negative: m is floored at -1; z is clamped at -10.
    inputs = tiny_inputs(values=T([[100.0, 100.0], [100.0, 100.0]]))
    z = regularised_advantage(inputs["weights_target"], inputs["q_target_taken"], inputs["values"], 2.0)
    assert z.min().item() == -10.0
    losses = omiga_losses(**inputs)
    wt, v = inputs["weights_target"], inputs["values"]
    expected = (torch.exp(z + 1.0) + math.exp(1.0) * wt * v / 2.0).mean()
    assert losses.v_loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_v_gradient_matches_closed_form():
    # d/dV_i of one element, with m fixed and z inside the clamp:
    # (wt_i / alpha) exp(-m) (1 - exp(z_i))
    gen = torch.Generator().manual_seed(0)
    b, n, alpha = 16, 3, 10.0
    wt = torch.rand(b, n, generator=gen)
    qt = torch.randn(b, n, generator=gen)
    values = torch.randn(b, n, generator=gen, requires_grad=True)
    inputs = tiny_inputs(
        q_taken=torch.randn(b, n),
        weights=torch.rand(b, n),
        bias=torch.randn(b),
        q_target_taken=qt,
        weights_target=wt,
        values=values,
        next_values_target=torch.randn(b, n),
        next_weights_target=torch.rand(b, n),
        next_bias_target=torch.randn(b),
        log_probs=-torch.rand(b, n),
        rewards=torch.randn(b),
        masks=torch.ones(b),
        alpha=alpha,
        gamma=0.99,
    )
    losses = omiga_losses(**inputs)
    (losses.v_loss * b * n).backward()
    z = (wt * qt - wt * values.detach()) / alpha
    m = torch.clamp(z.max(), min=-1.0)
    expected = (wt / alpha) * torch.exp(-m) * (1 - torch.exp(z))
    torch.testing.assert_close(values.grad, expected)


def test_fresh_nets_policy_loss_is_behaviour_cloning():
    module = make_module()
    batch = random_batch()
    losses = module.compute_losses(batch)
    # alpha = 10 and z ~ 0 at initialisation: weights ~ 1, loss ~ -mean log pi.
    assert losses.diagnostics["policy_weight_mean"].item() == pytest.approx(1.0, abs=0.05)
    assert losses.policy_loss.item() == pytest.approx(-losses.diagnostics["log_prob_mean"].item(), rel=0.05)


def make_module(**algo):
    dims = dict(n_agents=2, obs_dim=4, state_dim=6, action_type="discrete", action_dim=3)
    return OmigaModule(dims, asdict(AlgoConfig(hidden_sizes=[16, 16], mixer_hidden=8, **algo)))


def random_batch(b: int = 8) -> Batch:
    gen = torch.Generator().manual_seed(1)
    avail = torch.ones(b, 2, 3, dtype=torch.bool)
    return Batch(
        observations=torch.randn(b, 2, 4, generator=gen),
        states=torch.randn(b, 6, generator=gen),
        actions=torch.randint(3, (b, 2), generator=gen),
        rewards=torch.randn(b, generator=gen),
        masks=torch.ones(b),
        next_observations=torch.randn(b, 2, 4, generator=gen),
        next_states=torch.randn(b, 6, generator=gen),
        avail_actions=avail,
        next_avail_actions=avail,
    )


def grads_of(module: OmigaModule) -> dict[str, torch.Tensor | None]:
    return {name: None if p.grad is None else p.grad.clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize(
    "loss_name, owners",
    [("q_loss", ("q.", "mixer.")), ("v_loss", ("v.",)), ("policy_loss", ("policy.",))],
)
def test_each_loss_reaches_only_its_own_nets(loss_name, owners):
    module = make_module()
    getattr(module.compute_losses(random_batch()), loss_name).backward()
    for name, grad in grads_of(module).items():
        touched = grad is not None and grad.abs().sum().item() > 0
        assert touched == name.startswith(owners), name


def test_single_backward_equals_three_backwards():
    module = make_module()
    batch = random_batch()
    module.compute_losses(batch).total.backward()
    summed = grads_of(module)
    module.zero_grad(set_to_none=True)
    for name in ("q_loss", "v_loss", "policy_loss"):
        getattr(module.compute_losses(batch), name).backward()
    separate = grads_of(module)
    for name, grad in summed.items():
        if grad is None:
            assert separate[name] is None, name
        else:
            torch.testing.assert_close(grad, separate[name])


def test_targets_are_frozen_and_polyak_averaged():
    module = make_module(tau=0.25)
    assert all(not p.requires_grad for p in module.q_target.parameters())
    with torch.no_grad():
        for p in module.q.parameters():
            p.add_(1.0)
    before = [p.clone() for p in module.q_target.parameters()]
    module.update_targets()
    for old, new, online in zip(before, module.q_target.parameters(), module.q.parameters()):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * online)


def test_mixer_weights_are_non_negative_and_shapes():
    module = make_module()
    w, b = module.mixer(torch.randn(5, 6))
    assert w.shape == (5, 2) and b.shape == (5,)
    assert (w >= 0).all()


def test_masking_in_training_is_a_switch():
    batch = random_batch()
    batch.avail_actions = batch.avail_actions.clone()
    batch.avail_actions[..., 2] = False
    batch.actions = batch.actions.clamp(max=1)
    plain = make_module().compute_losses(batch).diagnostics["log_prob_mean"]
    torch.manual_seed(0)
    masked_module = make_module(mask_unavailable_in_training=True)
    torch.manual_seed(0)
    unmasked_module = make_module()
    masked = masked_module.compute_losses(batch).diagnostics["log_prob_mean"]
    unmasked = unmasked_module.compute_losses(batch).diagnostics["log_prob_mean"]
    assert masked > unmasked  # probability mass of the unavailable action is removed
    assert torch.isfinite(plain)
