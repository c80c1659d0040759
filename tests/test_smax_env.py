"""SMAXVecEnv: dims, determinism, frozen slots, termination semantics, heuristic policy.

One adapter is shared by the whole module (construction compiles reset/step/heuristic,
~10-15 s on CPU). Its episode limit is short (14 steps) so that heuristic play yields
both battles decided in time (terminated) and battles cut by the limit (truncated).
"""

from __future__ import annotations

import numpy as np
import pytest

from omiga_pl.envs import make_env
from omiga_pl.envs.base import StepResult
from omiga_pl.envs.smax import SMAXVecEnv, smax_spec
from omiga_pl.errors import ConfigError

NUM_ENVS = 16
MAX_STEPS = 14
N_ALLIES = 3
STOP = 4  # SMAX's "stop" action, the one always available


@pytest.fixture(scope="module")
def env() -> SMAXVecEnv:
    return make_env("smax", "3m", num_envs=NUM_ENVS, max_steps=MAX_STEPS)


def rollout(env: SMAXVecEnv, seed: int, policy: str = "heuristic", extra_steps: int = 0) -> list[StepResult]:
    """Reset, then step until every slot is done (plus ``extra_steps``); all results."""
    rng = np.random.default_rng(seed)
    results = [env.reset(seed)]
    remaining = extra_steps
    while not results[-1].done.all() or remaining > 0:
        if results[-1].done.all():
            remaining -= 1
        if policy == "heuristic":
            actions = env.heuristic_actions()
        else:
            noise = rng.random(results[-1].avail_actions.shape)
            noise[~results[-1].avail_actions] = -1.0
            actions = noise.argmax(-1)
        results.append(env.step(actions))
    return results


def unit_health(states: np.ndarray) -> np.ndarray:
    """[..., 6] health fraction of every unit (allies first) from SMAX 3m world states."""
    n_units, features = 6, 10  # own-feature block per unit, then teams and types
    return states[..., : n_units * features].reshape(*states.shape[:-1], n_units, features)[..., 0]


def test_spec_and_shapes_3m(env: SMAXVecEnv) -> None:
    spec = env.spec
    assert (spec.family, spec.scenario, spec.dims.action_type) == ("smax", "3m", "discrete")
    # SMAX's own dims (SMAC's 3m would be obs 30, state 48, 9 actions).
    d = spec.dims
    assert (d.n_agents, d.obs_dim, d.state_dim, d.action_dim) == (3, 75, 72, 8)
    assert spec.episode_limit == MAX_STEPS
    result = env.reset(0)
    assert result.observations.shape == (NUM_ENVS, 3, 75) and result.observations.dtype == np.float32
    assert result.states.shape == (NUM_ENVS, 72) and result.states.dtype == np.float32
    assert result.avail_actions.shape == (NUM_ENVS, 3, 8) and result.avail_actions.dtype == np.bool_
    for flags in (result.rewards, result.terminated, result.truncated, result.won):
        assert flags.shape == (NUM_ENVS,) and not flags.any()
    assert result.rewards.dtype == np.float32
    # Observations are stacked in env.agents order: each ally sees its own health last block.
    own_health = result.observations[:, :, 75 - 10]
    np.testing.assert_array_equal(own_health, unit_health(result.states)[:, :3])


def test_reset_and_trajectory_are_deterministic(env: SMAXVecEnv) -> None:
    first = rollout(env, seed=5, policy="random")
    second = rollout(env, seed=5, policy="random")
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        for name in ("observations", "states", "avail_actions", "rewards", "terminated", "truncated", "won"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    other = env.reset(6)
    assert not np.array_equal(other.observations, first[0].observations)
    # Slots start from different positions (keys are split per slot).
    assert not np.array_equal(first[0].states[0], first[0].states[1])


def test_finished_slots_stay_frozen(env: SMAXVecEnv) -> None:
    results = rollout(env, seed=1, policy="random", extra_steps=2)
    done = np.stack([r.done for r in results])  # [T+1, E]
    end = done.argmax(axis=0)  # first row where each slot is done
    assert done[-1].all() and (end > 0).all()
    for slot, t_end in enumerate(end):
        final = results[t_end]
        for later in results[t_end + 1 :]:
            np.testing.assert_array_equal(later.observations[slot], final.observations[slot])
            np.testing.assert_array_equal(later.states[slot], final.states[slot])
            np.testing.assert_array_equal(later.avail_actions[slot], final.avail_actions[slot])
            assert later.rewards[slot] == 0.0
            assert later.terminated[slot] == final.terminated[slot]
            assert later.truncated[slot] == final.truncated[slot]
            assert later.won[slot] == final.won[slot]


def test_terminated_and_truncated_are_separated(env: SMAXVecEnv) -> None:
    results = rollout(env, seed=0, policy="heuristic")
    final = results[-1]
    assert not (final.terminated & final.truncated).any()
    done = np.stack([r.done for r in results])
    steps_taken = (~done[:-1]).sum(axis=0)
    health = unit_health(final.states)
    wiped = (health[:, :N_ALLIES] == 0).all(axis=1) | (health[:, N_ALLIES:] == 0).all(axis=1)
    np.testing.assert_array_equal(final.terminated, wiped)
    np.testing.assert_array_equal(final.truncated, ~wiped)
    assert (steps_taken[final.truncated] == MAX_STEPS).all()
    assert (steps_taken[final.terminated] <= MAX_STEPS).all()
    # The short limit is chosen so that this seed exercises both outcomes.
    assert final.terminated.any() and final.truncated.any()


def test_won_only_when_all_enemies_dead_and_an_ally_alive(env: SMAXVecEnv) -> None:
    wins = 0
    for seed in range(3):
        final = rollout(env, seed=seed, policy="heuristic")[-1]
        health = unit_health(final.states)
        expected = (health[:, N_ALLIES:] == 0).all(axis=1) & (health[:, :N_ALLIES] > 0).any(axis=1)
        np.testing.assert_array_equal(final.won, expected)
        assert not (final.won & ~final.terminated).any()
        wins += int(final.won.sum())
    assert wins > 0


def test_rewards_are_team_rewards_with_win_bonus(env: SMAXVecEnv) -> None:
    results = rollout(env, seed=2, policy="heuristic")
    rewards = np.stack([r.rewards for r in results[1:]])
    returns = rewards.sum(axis=0)
    final = results[-1]
    # Damage share (at most 1 in total) plus a bonus of 1 for a win.
    assert (rewards >= 0).all() and (returns <= 2.0 + 1e-5).all()
    assert (returns[final.won] >= 1.0).all() and (returns[~final.won] <= 1.0 + 1e-5).all()


def test_heuristic_actions_are_available_and_side_effect_free(env: SMAXVecEnv) -> None:
    result = env.reset(3)
    steps = 0
    while not result.done.all():
        actions = env.heuristic_actions()
        np.testing.assert_array_equal(actions, env.heuristic_actions())
        assert actions.shape == (NUM_ENVS, N_ALLIES)
        taken = np.take_along_axis(result.avail_actions, actions[..., None], axis=2)
        assert taken.all()
        # Dead allies can only stop.
        dead = unit_health(result.states)[:, :N_ALLIES] == 0
        assert (actions[dead] == STOP).all()
        result = env.step(actions)
        steps += 1
    assert steps > 1


def test_heuristic_beats_random(env: SMAXVecEnv) -> None:
    def mean_return(policy: str) -> float:
        results = rollout(env, seed=11, policy=policy)
        return float(np.stack([r.rewards for r in results[1:]]).sum(axis=0).mean())

    assert mean_return("heuristic") > mean_return("random") + 0.3


def test_spec_without_compiling(env: SMAXVecEnv) -> None:
    assert smax_spec("3m", max_steps=MAX_STEPS) == env.spec
    assert smax_spec("3m").episode_limit == 100  # SMAX's default limit
    big = smax_spec("10m_vs_11m")
    assert (big.dims.n_agents, big.dims.action_dim) == (10, 16)  # 5 movement actions + one per enemy


def test_unknown_scenario_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        SMAXVecEnv("4m_vs_nothing", num_envs=2)
    message = str(info.value)
    assert "env.scenario" in message and "4m_vs_nothing" in message
    assert "3m" in message and "5m_vs_6m" in message


def test_bad_inputs_are_rejected(env: SMAXVecEnv) -> None:
    with pytest.raises(ConfigError, match="env.num_envs"):
        SMAXVecEnv("3m", num_envs=0)
    with pytest.raises(ConfigError, match="seed"):
        env.reset(-1)
    env.reset(0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((NUM_ENVS, N_ALLIES + 1), dtype=np.int64))
    with pytest.raises(ValueError, match="indices"):
        env.step(np.full((NUM_ENVS, N_ALLIES), 8))


def test_smax_gives_every_ally_the_same_reward(env: SMAXVecEnv) -> None:
    """The adapter reports ally 0's reward as the team reward; check SMAX's reward function."""
    import jax
    import jax.numpy as jnp

    env.reset(0)
    state = jax.tree.map(lambda x: x[0], env._carry.env_state.state)
    rng = np.random.default_rng(0)
    for _ in range(5):
        before = jnp.asarray(rng.uniform(0, 45, size=6), dtype=jnp.float32)
        after = jnp.minimum(before, jnp.asarray(rng.uniform(0, 45, size=6), dtype=jnp.float32))
        alive = state.replace(unit_alive=after > 5.0)
        rewards = env._env.compute_reward(alive, before, after)
        allies = [float(rewards[agent]) for agent in env.agents]
        assert allies == [allies[0]] * N_ALLIES and allies[0] > 0
