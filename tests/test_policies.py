"""The continuous policy family (``algo.policy``, ``algo.policy_log_std``), OMIGA's weight
cap, and ``conf/presets/reference.yaml``: the reference's losses, exactly."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch.distributions import Normal

from omiga_pl.algos.bc import BCModule
from omiga_pl.algos.icq import ICQModule
from omiga_pl.algos.omiga import OmigaConfig, OmigaModule
from omiga_pl.config import load_config
from omiga_pl.data.batch import Batch
from omiga_pl.errors import ConfigError
from omiga_pl.nets.policy import TanhGaussianPolicy, TanhMeanGaussianPolicy, gaussian_log_prob

CONF = Path(__file__).resolve().parent.parent / "conf"
PRESET = CONF / "presets" / "reference.yaml"
DIMS = dict(n_agents=3, obs_dim=17, state_dim=51, action_type="continuous", action_dim=1)


def preset_algo(*overrides: str) -> dict:
    config = load_config([CONF / "mamujoco.yaml", PRESET], list(overrides))
    return OmegaConf.to_container(config.algo)


def fixed_module(algo: dict) -> OmigaModule:
    torch.manual_seed(11)
    module = OmigaModule(DIMS, algo)
    # Move the target Q away from the online nets so that z is far from 0.
    with torch.no_grad():
        module.q_target.net[-1].bias.add_(30.0)
    return module


def fixed_batch(b: int = 32) -> Batch:
    """Hopper-like shapes; a quarter of agent 0's and agent 2's actions saturated."""
    gen = torch.Generator().manual_seed(5)
    actions = torch.rand(b, 3, 1, generator=gen) * 2 - 1
    actions[::4, 0] = 1.0
    actions[1::4, 2] = -1.0
    return Batch(
        observations=torch.randn(b, 3, 17, generator=gen),
        states=torch.randn(b, 51, generator=gen),
        actions=actions,
        rewards=torch.rand(b, generator=gen) * 3,
        masks=(torch.rand(b, generator=gen) > 0.1).float(),
        next_observations=torch.randn(b, 3, 17, generator=gen),
        next_states=torch.randn(b, 51, generator=gen),
    )


def test_reference_preset_sets_every_key_to_the_reference_value():
    algo = preset_algo()
    assert algo["policy"] == "tanh_gaussian" and algo["policy_log_std"] == "state"
    assert algo["action_eps"] == 1e-7 and algo["policy_weight_cap"] == 0.0 and algo["alpha"] == 10.0
    # Every key of OMIGA's schema is pinned (a later default change cannot leak in), except
    # the implementation choice of Adam, which does not change the maths.
    pinned = set(OmegaConf.to_container(OmegaConf.load(PRESET))["algo"])
    assert pinned == set(asdict(OmigaConfig())) - {"adam_impl"}


def test_reference_preset_losses_equal_main_before_the_policy_family():
    """Numbers printed by main at f55d41b (TanhGaussianPolicy as the only continuous policy,
    no weight cap) for this seed, module and batch; hidden sizes shrunk for speed."""
    algo = preset_algo("algo.hidden_sizes=[16,16]", "algo.mixer_hidden=8")
    losses = fixed_module(algo).compute_losses(fixed_batch())
    main_f55d41b = (1.7926273345947266, 0.13893230259418488, 8.655491828918457)
    got = (losses.q_loss.item(), losses.v_loss.item(), losses.policy_loss.item())
    assert got == pytest.approx(main_f55d41b, rel=1e-6)
    assert losses.diagnostics["policy_weight_max"].item() == pytest.approx(27.366732, rel=1e-5)


def test_reference_preset_policy_loss_by_hand():
    """The reference's formula written out in float64: atanh of the action clipped to
    1 - 1e-7, Gaussian density of the pre-image, log(1 - tanh^2) Jacobian, weights e^z."""
    algo = preset_algo("algo.hidden_sizes=[16,16]", "algo.mixer_hidden=8")
    module, batch = fixed_module(algo), fixed_batch()
    losses = module.compute_losses(batch)
    with torch.no_grad():
        h = module.policy.trunk(torch.cat([batch.observations, torch.eye(3).expand(32, 3, 3)], -1))
        mean = module.policy.mean_head(h).double().clamp(-9, 9)
        log_std = module.policy.log_std_head(h).double().clamp(-5, 2)
        # Clipped in float32 as the reference does (1 - 1e-7 rounds to 1 - 1.19e-7).
        u = torch.atanh(batch.actions.clamp(-1 + 1e-7, 1 - 1e-7).double())
        log_p = Normal(mean, log_std.exp()).log_prob(u) - torch.log(1 - torch.tanh(u) ** 2)
        q_t = module.q_target(torch.cat([batch.observations, batch.actions], -1)).squeeze(-1).double()
        w_t, _ = module.mixer_target(batch.states)
        v = module.v(batch.observations).squeeze(-1).double()
        z = (w_t.double() * (q_t - v) / 10.0).clamp(-10, 10)
    expected = -(z.exp() * log_p.sum(-1)).mean().item()
    assert losses.policy_loss.item() == pytest.approx(expected, rel=1e-4)


def test_weight_cap_bounds_only_the_policy_weights():
    algo = preset_algo("algo.hidden_sizes=[16,16]", "algo.mixer_hidden=8")
    free = fixed_module(algo).compute_losses(fixed_batch())
    capped = fixed_module({**algo, "policy_weight_cap": 5.0}).compute_losses(fixed_batch())
    assert capped.q_loss.item() == free.q_loss.item() and capped.v_loss.item() == free.v_loss.item()
    assert free.diagnostics["policy_weight_max"].item() > 5.0
    assert capped.diagnostics["policy_weight_max"].item() == pytest.approx(5.0)
    assert capped.policy_loss.item() < free.policy_loss.item()  # log-probs < 0, smaller weights


def test_weight_diagnostics_by_hand():
    from omiga_pl.losses.omiga import omiga_losses

    b, n = 2, 2
    ones = torch.ones(b, n)
    # z = wt (Qt - V) / alpha = [[20, 0], [0, 0]] / 1 -> clamped to 10 for one of four.
    q_target = torch.tensor([[20.0, 0.0], [0.0, 0.0]])
    losses = omiga_losses(
        q_taken=ones,
        weights=ones,
        bias=torch.zeros(b),
        q_target_taken=q_target,
        weights_target=ones,
        values=torch.zeros(b, n),
        next_values_target=ones,
        next_weights_target=ones,
        next_bias_target=torch.zeros(b),
        log_probs=-ones,
        rewards=torch.zeros(b),
        masks=torch.ones(b),
        alpha=1.0,
        gamma=0.99,
    )
    w = torch.tensor([math.exp(10), 1, 1, 1])
    assert losses.diagnostics["z_clamped_share"].item() == 0.25
    assert losses.diagnostics["policy_weight_ess"].item() == pytest.approx(
        (w.sum() ** 2 / (w**2).sum() / 4).item()
    )


def test_tanh_mean_gaussian_scores_the_raw_action():
    policy = TanhMeanGaussianPolicy(n_agents=3, obs_dim=17, action_dim=2, hidden_sizes=[8])
    obs = torch.randn(6, 3, 17)
    actions = torch.rand(6, 3, 2) * 2 - 1
    actions[0] = 1.0  # saturated: an ordinary point, no atanh
    log_p, entropy = policy.log_prob_and_entropy(obs, actions)
    mean, log_std = policy.mean_and_log_std(obs)
    assert mean.abs().max() < 1
    by_hand = Normal(mean, log_std.exp()).log_prob(actions).sum(-1)
    torch.testing.assert_close(log_p, by_hand)
    torch.testing.assert_close(entropy, Normal(mean, log_std.exp()).entropy().sum(-1))
    torch.testing.assert_close(policy.act(obs), mean)
    # The saturated action's log-prob is bounded by the density at the mean, unlike the
    # tanh-Gaussian's (its Jacobian term makes 1 - 1e-7 score as a spike).
    assert (log_p[0] <= gaussian_log_prob(mean[0], log_std[0], mean[0]) + 1e-6).all()


@pytest.mark.parametrize("cls", [TanhGaussianPolicy, TanhMeanGaussianPolicy])
def test_state_independent_log_std_is_one_vector(cls):
    torch.manual_seed(0)
    state = cls(n_agents=2, obs_dim=3, action_dim=4, hidden_sizes=[8], log_std="state")
    torch.manual_seed(0)
    param = cls(n_agents=2, obs_dim=3, action_dim=4, hidden_sizes=[8], log_std="param")
    # Same trunk and mean head for a seed; the vector starts at 0 and clamps like the head.
    torch.testing.assert_close(state.mean_head.weight, param.mean_head.weight)
    assert not hasattr(param, "log_std_head") and param.log_std_param.shape == (4,)
    with torch.no_grad():
        param.log_std_param.copy_(torch.tensor([-9.0, -1.0, 0.5, 7.0]))
    _, log_std = param.mean_and_log_std(torch.randn(5, 2, 3))
    assert log_std.shape == (5, 2, 4)
    torch.testing.assert_close(log_std[3, 1], torch.tensor([-5.0, -1.0, 0.5, 2.0]))


@pytest.mark.parametrize("module_class", [OmigaModule, BCModule, ICQModule])
def test_every_likelihood_algorithm_builds_the_chosen_policy(module_class):
    name = {OmigaModule: "omiga", BCModule: "bc", ICQModule: "icq"}[module_class]
    config = load_config(
        [CONF / "mamujoco.yaml"],
        [
            f"algo.name={name}",
            "algo.policy=gaussian_tanh_mean",
            "algo.policy_log_std=param",
            "algo.hidden_sizes=[8]",
        ],
    )
    module = module_class(DIMS, OmegaConf.to_container(config.algo))
    assert isinstance(module.policy, TanhMeanGaussianPolicy) and hasattr(module.policy, "log_std_param")
    batch = fixed_batch(8)
    batch = Batch(**{**vars(batch), "next_actions": batch.actions.flip(0)})  # ICQ's target needs them
    losses = module.compute_losses(batch)
    assert torch.isfinite(losses.named["policy"])


def test_bc_mse_regresses_the_policys_deterministic_action():
    config = load_config(
        [CONF / "mamujoco.yaml"],
        ["algo.name=bc", "algo.loss=mse", "algo.policy=gaussian_tanh_mean", "algo.hidden_sizes=[8]"],
    )
    module = BCModule(DIMS, OmegaConf.to_container(config.algo))
    batch = fixed_batch(8)
    expected = ((module.policy.act(batch.observations) - batch.actions) ** 2).mean()
    assert module.compute_losses(batch).named["policy"].item() == pytest.approx(expected.item())


@pytest.mark.parametrize(
    "override, message",
    [
        ("algo.policy=beta", "key 'algo.policy': expected one of ['tanh_gaussian', 'gaussian_tanh_mean']"),
        ("algo.policy_log_std=global", "key 'algo.policy_log_std': expected one of ['state', 'param']"),
    ],
)
def test_unknown_policy_names_the_key(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config([CONF / "mamujoco.yaml"], [override])
    assert message in str(caught.value)
