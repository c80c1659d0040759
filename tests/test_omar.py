"""OMAR's losses against numbers computed by hand, its search, and its sampling contract."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch

from omiga_pl.algos.omar import OmarConfig, OmarModule, noise_seed
from omiga_pl.data.batch import Batch
from omiga_pl.data.datamodule import batch_seed
from omiga_pl.errors import ConfigError
from omiga_pl.losses.omar import (
    actor_loss_continuous,
    actor_loss_discrete,
    cql_proposal_actions,
    mimic_actions,
    omar_losses_continuous,
    omar_losses_discrete,
    twin_td_target,
    zeroth_order_search,
)

T = torch.tensor
LOG2 = math.log(2.0)


def test_twin_td_target_by_hand():
    # min(Q1', Q2') = [[1, 2], [1, 0]]; y = r + .5 * mask * min = [[1.5, 2], [2, 2]]
    y = twin_td_target(
        T([1.0, 2.0]), T([1.0, 0.0]), T([[1.0, 4.0], [3.0, 0.0]]), T([[2.0, 2.0], [1.0, 5.0]]), 0.5
    )
    assert torch.allclose(y, T([[1.5, 2.0], [2.0, 2.0]]))
    assert not y.requires_grad


def continuous_inputs(**changes):
    """B = 2, N = 2, A = 1, K = 2 CQL samples; y = [[1.5, 2], [2, 2]] as above."""
    inputs = dict(
        q1_taken=T([[1.0, 2.0], [0.0, 1.0]], requires_grad=True),
        q2_taken=T([[2.0, 2.0], [2.0, 1.0]], requires_grad=True),
        q1_samples=torch.zeros(2, 2, 2),
        q2_samples=torch.ones(2, 2, 2),
        log_density=torch.zeros(2, 2, 2),
        next_q1_target=T([[1.0, 4.0], [3.0, 0.0]]),
        next_q2_target=T([[2.0, 2.0], [1.0, 5.0]]),
        rewards=T([1.0, 2.0]),
        masks=T([1.0, 0.0]),
        policy_actions=T([[[0.5], [-0.5]], [[0.0], [1.0]]], requires_grad=True),
        policy_q=T([[2.0, 4.0], [0.0, 2.0]], requires_grad=True),
        targets=T([[[1.0], [0.0]], [[0.0], [1.0]]]),
        gamma=0.5,
        cql_alpha=2.0,
        cql_temperature=1.0,
        omar_coe=0.75,
        action_l2=0.1,
    )
    inputs.update(changes)
    return inputs


def test_continuous_critic_loss_by_hand():
    # TD: Q1 - y = [[-.5, 0], [-2, -1]] -> mse 5.25/4 = 1.3125; Q2 - y = [[.5, 0], [0, -1]]
    # -> mse 1.25/4 = .3125; td = 1.625.
    # CQL (log mu = 0, T = 1): Q1 samples all 0 -> lse = log 2, penalty1 = log 2 - mean(Q1) =
    # log 2 - 1; Q2 samples all 1 -> lse = 1 + log 2, penalty2 = 1 + log 2 - 1.75.
    # loss = 1.625 + 2 (2 log 2 - 1.75) = 4 log 2 - 1.875
    losses = omar_losses_continuous(**continuous_inputs())
    assert losses.named["q"].item() == pytest.approx(4 * LOG2 - 1.875)
    assert losses.diagnostics["td_loss"].item() == pytest.approx(1.625)
    assert losses.diagnostics["cql_penalty"].item() == pytest.approx(2 * LOG2 - 1.75)
    assert losses.diagnostics["td_target_mean"].item() == pytest.approx(7.5 / 4)


def test_cql_density_and_temperature_by_hand():
    # One Q1 entry with samples [1, 3], log mu = [1, 1], T = 2:
    # 2 lse([0, 1]) - Q = 2 log(1 + e) - Q. Everything else zero so that only it counts.
    inputs = continuous_inputs(
        q1_taken=T([[0.5]]),
        q2_taken=T([[0.0]]),
        q1_samples=T([[[1.0, 3.0]]]),
        q2_samples=T([[[0.0, 0.0]]]),
        log_density=T([[[1.0, 1.0]]]),
        next_q1_target=T([[0.0]]),
        next_q2_target=T([[0.0]]),
        rewards=T([0.0]),
        masks=T([1.0]),
        cql_alpha=1.0,
        cql_temperature=2.0,
    )
    expected_penalty = (2 * math.log(1 + math.e) - 0.5) + (2 * math.log(2 * math.exp(-0.5)) - 0.0)
    losses = omar_losses_continuous(**inputs)
    assert losses.diagnostics["cql_penalty"].item() == pytest.approx(expected_penalty)
    assert losses.named["q"].item() == pytest.approx(0.25 + expected_penalty)


def test_continuous_actor_loss_by_hand():
    # B = 1, N = 2, A = 1: mimic = ((.5 - 1)^2 + (-.5 - 0)^2) / 2 = .25, mean Q = 3,
    # l2 = .1 * (.25 + .25) / 2 = .025; loss = .75 * .25 - .25 * 3 + .025 = -.5375
    actions = T([[[0.5], [-0.5]]], requires_grad=True)
    loss, diagnostics = actor_loss_continuous(actions, T([[2.0, 4.0]]), T([[[1.0], [0.0]]]), 0.75, 0.1)
    assert loss.item() == pytest.approx(-0.5375)
    assert diagnostics["mimic_loss"].item() == pytest.approx(0.25)
    # d/da: .75 * (a - t) + .1 * a  (the 2 of the square cancels the mean over 2 entries)
    (grad,) = torch.autograd.grad(loss, actions)
    assert torch.allclose(grad, T([[[0.75 * -0.5 + 0.05], [0.75 * -0.5 - 0.05]]]))


def test_mimic_target_takes_the_search_only_where_it_is_better():
    policy = T([[[0.1], [0.2]]])
    search = T([[[0.9], [0.8]]])
    # Agent 0: search Q 1.5 > 1 -> search action; agent 1: tie (2 = 2) keeps the policy's.
    chosen = mimic_actions(policy, T([[1.0, 2.0]]), search, T([[1.5, 2.0]]))
    assert torch.equal(chosen, T([[[0.9], [0.2]]]))


def test_zeroth_order_search_by_hand():
    # B = N = A = 1, S = 3 samples, I = 2 iterations, E = 2 elites, Q(a) = -(a - .3)^2.
    # it 1: mu 0, sigma 1, samples [.2, .6, -1], Q [-.01, -.09, -1.69] -> elites [.2, .6],
    #       mu = .4, sigma = std([.2, .6]) (unbiased) = sqrt(.08)
    # it 2: samples .4 + sqrt(.08) [.5, -.5, 3] = [.5414, .2586, 1.2485 -> clipped 1];
    #       pool with the elites; best .4 - .5 sqrt(.08) = .258579, Q = -(.041421)^2
    seen = []

    def q_fn(actions):
        seen.append(actions.clone())
        return -((actions - 0.3) ** 2).squeeze(-1)

    normal = T([[0.2, 0.6, -1.0], [0.5, -0.5, 3.0]]).view(2, 1, 3, 1, 1)
    best, best_q = zeroth_order_search(q_fn, normal, torch.zeros(1, 1, 1), torch.ones(1, 1, 1), n_elites=2)
    expected = 0.4 - 0.5 * math.sqrt(0.08)
    assert best.item() == pytest.approx(expected)
    assert best_q.item() == pytest.approx(-((expected - 0.3) ** 2))
    assert seen[1].flatten().tolist() == pytest.approx([0.4 + 0.5 * math.sqrt(0.08), expected, 1.0])
    # A worse second iteration keeps the first iteration's best (the elites stay in the pool).
    normal[1] = 3.0
    best, _ = zeroth_order_search(q_fn, normal, torch.zeros(1, 1, 1), torch.ones(1, 1, 1), n_elites=2)
    assert best.item() == pytest.approx(0.2)


def test_zeroth_order_search_finds_the_maximum_per_agent():
    # Each agent and action dimension has its own optimum; 2 x 64 samples find it closely.
    optimum = T([[[0.5, -0.25], [-0.75, 0.0]]])

    def q_fn(actions):
        return -((actions - optimum.unsqueeze(1)) ** 2).sum(-1)

    normal = torch.randn(3, 1, 64, 2, 2, generator=torch.Generator().manual_seed(0))
    best, _ = zeroth_order_search(q_fn, normal, torch.zeros(1, 2, 2), torch.full((1, 2, 2), 2.0), n_elites=8)
    assert (best - optimum).abs().max() < 0.1


def test_cql_proposals_by_hand():
    # B = N = 1, A = 2, K = 1, std .2. Noisy: pi(o) + .2 [1, 0] = [.7, -.5];
    # pi(o') + .2 [2, -1] = [1.3 -> 1, -.2]. log mu: uniform 2 log .5; Gaussian
    # sum(-z^2/2 - log .2 - log(2 pi)/2).
    c = -math.log(0.2) - 0.5 * math.log(2 * math.pi)
    actions, log_density = cql_proposal_actions(
        T([[[0.5, -0.5]]]), T([[[0.9, 0.0]]]), T([[[[0.3, -0.7]]]]), T([[[[1.0, 0.0]], [[2.0, -1.0]]]]), 0.2
    )
    assert actions.shape == (1, 3, 1, 2)
    assert torch.allclose(actions.flatten(), T([0.3, -0.7, 0.7, -0.5, 1.0, -0.2]))
    expected = [2 * math.log(0.5), (-0.5 + c) + c, (-2.0 + c) + (-0.5 + c)]
    assert log_density.flatten().tolist() == pytest.approx(expected)


def test_discrete_actor_loss_by_hand():
    # logits [0, log 2, masked]: pi = [1/3, 2/3, 0]. Q = [1, 3, 10] with action 2 unavailable:
    # a* = 1 (not the unavailable 2). CE = -log(2/3); E_pi Q = 1/3 + 2 = 7/3;
    # loss = .5 (-log(2/3)) - .5 (7/3)
    avail = T([[[True, True, False]]])
    logits = T([[[0.0, LOG2, -1e8]]], requires_grad=True)
    q = T([[[1.0, 3.0, 10.0]]], requires_grad=True)
    loss, diagnostics = actor_loss_discrete(logits, q, avail, 0.5)
    assert loss.item() == pytest.approx(0.5 * -math.log(2 / 3) - 0.5 * 7 / 3)
    assert diagnostics["greedy_agrees"].item() == 1.0
    assert torch.autograd.grad(loss, q, allow_unused=True)[0] is None


def test_discrete_critic_loss_by_hand():
    # Q1 = [1, 2, 5], Q2 = [0, 1, 5], dataset action 1, action 2 unavailable.
    # y = 1 + .5 min(2, 4) = 2; td = (2 - 2)^2 + (1 - 2)^2 = 1;
    # CQL over available actions: lse(1, 2) - 2 = lse(0, 1) - 1 = log(1 + e) - 1, for both.
    avail = T([[[True, True, False]]])
    losses = omar_losses_discrete(
        q1_all=T([[[1.0, 2.0, 5.0]]]),
        q2_all=T([[[0.0, 1.0, 5.0]]]),
        actions=T([[1]]),
        next_q1_target=T([[2.0]]),
        next_q2_target=T([[4.0]]),
        rewards=T([1.0]),
        masks=T([1.0]),
        logits=T([[[0.0, 0.0, -1e8]]]),
        avail_actions=avail,
        gamma=0.5,
        cql_alpha=1.0,
        omar_coe=1.0,
    )
    assert losses.named["q"].item() == pytest.approx(1.0 + 2 * (math.log(1 + math.e) - 1))
    # Actor with coe 1: CE toward argmax_avail Q1 = 1 under uniform [.5, .5] -> log 2.
    assert losses.named["policy"].item() == pytest.approx(LOG2)


def tiny_module(action_type: str, **algo) -> OmarModule:
    dims = dict(n_agents=2, obs_dim=4, state_dim=6, action_type=action_type, action_dim=3)
    torch.manual_seed(0)
    return OmarModule(dims, asdict(OmarConfig(hidden_sizes=[16, 16], **algo)))


def tiny_batch(action_type: str, b: int = 8) -> Batch:
    gen = torch.Generator().manual_seed(3)
    if action_type == "discrete":
        actions = torch.randint(3, (b, 2), generator=gen)
    else:
        actions = torch.rand(b, 2, 3, generator=gen) * 2 - 1
    return Batch(
        observations=torch.randn(b, 2, 4, generator=gen),
        states=torch.randn(b, 6, generator=gen),
        actions=actions,
        rewards=torch.randn(b, generator=gen),
        masks=torch.ones(b),
        next_observations=torch.randn(b, 2, 4, generator=gen),
        next_states=torch.randn(b, 6, generator=gen),
    )


@pytest.mark.parametrize("action_type", ["continuous", "discrete"])
def test_sampling_is_a_pure_function_of_the_step_and_leaves_the_global_rng(action_type):
    module, batch = tiny_module(action_type), tiny_batch(action_type)
    rng = torch.get_rng_state()
    first = module.compute_losses(batch)
    second = module.compute_losses(batch)
    assert torch.equal(torch.get_rng_state(), rng), "training noise must not draw from the global RNG"
    for name in first.named:
        assert torch.equal(first.named[name], second.named[name])
    with torch.no_grad():
        a, b = module.act(batch.observations), module.act(batch.observations)
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), rng)


def test_noise_seed_depends_on_seed_rank_and_step_and_differs_from_the_sampler():
    seeds = {noise_seed(0, 0, 1), noise_seed(0, 0, 2), noise_seed(1, 0, 1), noise_seed(0, 1, 1)}
    assert len(seeds) == 4 and noise_seed(0, 0, 1) == noise_seed(0, 0, 1)
    assert noise_seed(0, 0, 1) != batch_seed(0, 0, 1)


def test_pure_policy_gradient_climbs_q1_through_the_detached_critic():
    # omar_coe 0 and no action penalty: the actor loss is -mean Q1(o, pi(o)) exactly, and its
    # gradient reaches the actor only.
    module, batch = tiny_module("continuous", omar_coe=0.0, action_l2=0.0), tiny_batch("continuous")
    losses = module.compute_losses(batch)
    obs = batch.observations
    expected = -module.q.q1(torch.cat([obs, module.policy(obs)], -1)).mean()
    assert losses.named["policy"].item() == pytest.approx(expected.item())
    critic_grads = torch.autograd.grad(
        losses.named["policy"], list(module.q.parameters()), retain_graph=True, allow_unused=True
    )
    assert all(g is None for g in critic_grads)
    actor_grads = torch.autograd.grad(losses.named["policy"], list(module.policy.parameters()))
    assert sum(g.abs().sum() for g in actor_grads) > 0


def test_continuous_actor_is_tanh_bounded_and_small_at_start():
    module = tiny_module("continuous")
    actions = module.act(torch.randn(5, 2, 4) * 10)
    assert actions.shape == (5, 2, 3) and actions.abs().max() <= 1
    # The output layer starts in [-3e-3, 3e-3] (TD3 init) so early actions sit near 0.
    assert module.policy.net.net[-1].weight.abs().max() <= 3e-3


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("omar_num_elites", 1, "algo.omar_num_elites"),
        ("omar_num_elites", 30, "algo.omar_num_elites"),
        ("omar_coe", 1.5, "algo.omar_coe"),
        ("cql_alpha", -1.0, "algo.cql_alpha"),
        ("omar_sigma", 0.0, "algo.omar_sigma"),
        ("omar_iters", 0, "algo.omar_iters"),
    ],
)
def test_bad_values_name_the_key(key, value, expected):
    with pytest.raises(ConfigError, match=f"config: key '{expected}'"):
        OmarConfig(**{key: value}).validate()
