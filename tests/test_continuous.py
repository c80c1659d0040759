"""Continuous OMIGA: the tanh-Gaussian policy's log-probabilities, clamps and the
module's continuous losses against numbers computed by hand."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch
from torch.distributions import Independent, Normal, TanhTransform, TransformedDistribution

from omiga_pl.algos.omiga import OmigaModule
from omiga_pl.config import AlgoConfig
from omiga_pl.data.batch import Batch
from omiga_pl.nets.policy import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    MEAN_CLAMP,
    TanhGaussianPolicy,
    tanh_gaussian_log_prob,
)


def test_log_prob_matches_torch_distributions_away_from_boundary():
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(64, 3, 4, generator=gen, dtype=torch.float64)
    log_std = torch.rand(64, 3, 4, generator=gen, dtype=torch.float64) * 2 - 1.5
    actions = (torch.rand(64, 3, 4, generator=gen, dtype=torch.float64) * 2 - 1) * 0.95
    reference = Independent(
        TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform(cache_size=1)]), 1
    ).log_prob(actions)
    torch.testing.assert_close(tanh_gaussian_log_prob(mean, log_std, actions), reference)


def test_log_prob_by_hand():
    # mean 0, std 1, action tanh(0.5): log N(0.5; 0, 1) - log(1 - tanh(0.5)^2)
    expected = -0.5 * 0.25 - 0.5 * math.log(2 * math.pi) - math.log(1 - math.tanh(0.5) ** 2)
    value = tanh_gaussian_log_prob(torch.zeros(1), torch.zeros(1), torch.tensor([math.tanh(0.5)]))
    assert value.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_prob_finite_at_the_boundary(dtype):
    mean = torch.zeros(4, 2, dtype=dtype, requires_grad=True)
    log_std = torch.zeros(4, 2, dtype=dtype, requires_grad=True)
    actions = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0], [0.0, 1.0]], dtype=dtype)
    value = tanh_gaussian_log_prob(mean, log_std, actions)
    assert torch.isfinite(value).all()
    value.sum().backward()
    assert torch.isfinite(mean.grad).all() and torch.isfinite(log_std.grad).all()


def test_clamps_are_respected_and_act_is_tanh_of_clamped_mean():
    policy = TanhGaussianPolicy(n_agents=2, obs_dim=3, action_dim=2, hidden_sizes=[8])
    obs = torch.randn(5, 2, 3)
    with torch.no_grad():
        policy.mean_head.weight.zero_()
        policy.log_std_head.weight.zero_()
        policy.mean_head.bias.copy_(torch.tensor([100.0, -100.0]))
        policy.log_std_head.bias.copy_(torch.tensor([100.0, -100.0]))
    mean, log_std = policy.mean_and_log_std(obs)
    assert (mean[..., 0] == MEAN_CLAMP).all() and (mean[..., 1] == -MEAN_CLAMP).all()
    assert (log_std[..., 0] == LOG_STD_MAX).all() and (log_std[..., 1] == LOG_STD_MIN).all()
    torch.testing.assert_close(policy.act(obs), torch.tanh(mean))
    # Random heads: every output stays inside the clamps.
    policy = TanhGaussianPolicy(n_agents=2, obs_dim=3, action_dim=2, hidden_sizes=[8])
    mean, log_std = policy.mean_and_log_std(100 * torch.randn(50, 2, 3))
    assert mean.abs().max() <= MEAN_CLAMP and LOG_STD_MIN <= log_std.min() <= log_std.max() <= LOG_STD_MAX


def continuous_module(**algo) -> OmigaModule:
    """The reference's policy (tanh-Gaussian, state-dependent log-std), alpha and tau unless
    overridden."""
    dims = dict(n_agents=2, obs_dim=3, state_dim=6, action_type="continuous", action_dim=1)
    algo = {"policy": "tanh_gaussian", "policy_log_std": "state", "alpha": 10.0, "tau": 0.005, **algo}
    return OmigaModule(dims, asdict(AlgoConfig(hidden_sizes=[8, 8], mixer_hidden=4, **algo)))


def continuous_batch(b: int = 2) -> Batch:
    gen = torch.Generator().manual_seed(3)
    return Batch(
        observations=torch.randn(b, 2, 3, generator=gen),
        states=torch.randn(b, 6, generator=gen),
        actions=torch.rand(b, 2, 1, generator=gen) * 2 - 1,
        rewards=torch.tensor([1.0, 0.0])[:b] if b <= 2 else torch.randn(b, generator=gen),
        masks=torch.tensor([1.0, 0.0])[:b] if b <= 2 else torch.ones(b),
        next_observations=torch.randn(b, 2, 3, generator=gen),
        next_states=torch.randn(b, 6, generator=gen),
    )


def set_constant(linear: torch.nn.Linear, value: float) -> None:
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.fill_(value)


def test_continuous_losses_by_hand():
    """Output layers with zero weights make every net a constant: Q = 2, V = 1,
    w = 0.5, b = 0.25 (online and target), policy mean 0 and log-std 0."""
    module = continuous_module()
    for net in (module.q, module.q_target):
        set_constant(net.net[-1], 2.0)
    for net in (module.v, module.v_target):
        set_constant(net.net[-1], 1.0)
    for mixer in (module.mixer, module.mixer_target):
        set_constant(mixer.weight_head, 0.5)
        set_constant(mixer.bias_head, 0.25)
    set_constant(module.policy.mean_head, 0.0)
    set_constant(module.policy.log_std_head, 0.0)
    batch = continuous_batch()
    losses = module.compute_losses(batch)
    # Q_tot = 0.5*2 + 0.5*2 + 0.25 = 2.25; y = [1 + 0.99 * (0.5 + 0.5 + 0.25), 0 + 0] = [2.2375, 0]
    assert losses.q_loss.item() == pytest.approx(((2.25 - 2.2375) ** 2 + 2.25**2) / 2, rel=1e-6)
    # z = (0.5*2 - 0.5*1) / 10 = 0.05 everywhere, m = 0.05
    assert losses.v_loss.item() == pytest.approx(1.0 + math.exp(-0.05) * 0.5 * 1.0 / 10.0, rel=1e-6)
    u = torch.atanh(batch.actions.double().squeeze(-1))
    log_probs = -0.5 * u**2 - 0.5 * math.log(2 * math.pi) - torch.log(1 - torch.tanh(u) ** 2)
    expected_policy = -(math.exp(0.05) * log_probs).mean().item()
    assert losses.policy_loss.item() == pytest.approx(expected_policy, rel=1e-5)


def test_continuous_q_takes_the_action_as_input():
    module = continuous_module()
    batch = continuous_batch()
    other = Batch(**{**vars(batch), "actions": -batch.actions})
    a = module.compute_losses(batch).diagnostics["q_taken_mean"]
    b = module.compute_losses(other).diagnostics["q_taken_mean"]
    assert a != b
    assert module.q.net[0].in_features == 3 + 1 + 2  # obs + action + one-hot id


@pytest.mark.parametrize(
    "loss_name, owners",
    [("q_loss", ("q.", "mixer.")), ("v_loss", ("v.",)), ("policy_loss", ("policy.",))],
)
def test_continuous_losses_reach_only_their_own_nets(loss_name, owners):
    module = continuous_module()
    getattr(module.compute_losses(continuous_batch(16)), loss_name).backward()
    for name, param in module.named_parameters():
        touched = param.grad is not None and param.grad.abs().sum().item() > 0
        assert touched == name.startswith(owners), name


def test_continuous_act_shape_and_range():
    module = continuous_module()
    actions = module.act(torch.randn(7, 2, 3))
    assert actions.shape == (7, 2, 1) and actions.abs().max() < 1


def test_unknown_action_type_is_a_config_error():
    from omiga_pl.errors import ConfigError

    dims = dict(n_agents=2, obs_dim=3, state_dim=6, action_type="hybrid", action_dim=1)
    with pytest.raises(ConfigError, match="action type"):
        OmigaModule(dims, asdict(AlgoConfig()))


def test_action_eps_sets_where_saturated_actions_are_clipped():
    """algo.action_eps reaches the policy: a saturated action scores as 1 - eps would."""
    torch.manual_seed(0)
    obs, saturated = torch.randn(4, 2, 3), torch.ones(4, 2, 1)
    for eps in (1e-7, 1e-3):
        module = continuous_module(action_eps=eps)
        assert module.policy.action_eps == eps
        log_p, _ = module.policy.log_prob_and_entropy(obs, saturated)
        mean, log_std = module.policy.mean_and_log_std(obs)
        u = math.atanh(float(torch.tensor(1.0 - eps)))  # float32 rounding, as the policy sees it
        by_hand = Normal(mean, log_std.exp()).log_prob(torch.full_like(mean, u)) - math.log(
            1 - math.tanh(u) ** 2
        )
        torch.testing.assert_close(log_p, by_hand.sum(-1), rtol=1e-4, atol=1e-3)
