"""The MaMuJoCo adapter: sizes in both observation modes, padding, the joint/local
action and observation mappings, and agreement with the single-agent gym env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from omiga_pl.envs import env_spec, make_env
from omiga_pl.envs.mamujoco import MaMuJoCoVecEnv, reference_observations
from omiga_pl.errors import ConfigError

# (task, N, single-agent obs G, local sizes at agent_obsk=1, per-agent action size)
TASKS = [
    ("Hopper-3x1", 3, 11, [8, 9, 8], 1),
    ("Ant-2x4", 2, 105, [63, 63], 4),
    ("HalfCheetah-6x1", 6, 17, [9, 9, 8, 9, 9, 8], 1),
]


@pytest.mark.parametrize("task, n, g, local, act", TASKS)
def test_sizes_in_both_modes(task, n, g, local, act):
    spec = env_spec("mamujoco", task)
    ref = spec.dims
    assert (ref.n_agents, ref.obs_dim, ref.state_dim, ref.action_dim) == (n, g + n, n * (g + n), act)
    assert ref.action_type == "continuous" and spec.episode_limit == 1000
    loc = env_spec("mamujoco", task, obs_mode="local").dims
    assert (loc.obs_dim, loc.state_dim) == (max(local), g)
    env = MaMuJoCoVecEnv(task, 2, obs_mode="local")
    assert env.local_sizes == local
    result = env.reset(0)
    assert result.observations.shape == (2, n, max(local)) and result.states.shape == (2, g)
    for i, size in enumerate(local):  # zero padding at the end of shorter agents
        assert (result.observations[:, i, size:] == 0).all()


@pytest.mark.parametrize("task, n, g, local, act", TASKS)
def test_joint_local_round_trip_and_single_agent_trajectory(task, n, g, local, act):
    """Split joint actions step the multi-agent env exactly like the single-agent env."""
    env = MaMuJoCoVecEnv(task, 1, obs_mode="local")
    rng = np.random.default_rng(0)
    single = gym.make(f"{task.split('-')[0]}-v5")
    slot_seed = int(np.random.SeedSequence(7).generate_state(1, np.uint32)[0])
    obs, _ = single.reset(seed=slot_seed)
    env.reset(7)
    np.testing.assert_array_equal(env.global_states()[0], obs.astype(np.float32))
    for _ in range(30):
        joint = rng.uniform(-1, 1, single.action_space.shape).astype(np.float32)
        per_agent = env.split_joint_actions(joint)
        assert per_agent.shape == (n, act)
        np.testing.assert_array_equal(env.join_agent_actions(per_agent), joint)  # round trip
        obs, reward, terminated, _, _ = single.step(joint.astype(np.float64))
        result = env.step(per_agent[None])
        np.testing.assert_array_equal(env.global_states()[0], obs.astype(np.float32))
        assert result.rewards[0] == np.float32(reward) and result.terminated[0] == terminated
        # Local observations are gymnasium-robotics' own, from the same simulator state.
        raw = env.envs[0]
        for i, agent in enumerate(env.agents):
            np.testing.assert_allclose(
                result.observations[0, i, : local[i]], raw._get_obs_agent(i), rtol=1e-6
            )
            assert raw.observation_space(agent).shape == (local[i],)
        if terminated:
            break


def test_reference_observation_is_standardised_full_obs_with_id():
    env = make_env("mamujoco", "Hopper-3x1", num_envs=2)
    result = env.reset(3)
    g = env.global_states()
    for i in range(3):
        vec = np.concatenate([g[:, :].astype(np.float64), np.tile(np.eye(3)[i], (2, 1))], axis=1)
        expected = (vec - vec.mean(1, keepdims=True)) / vec.std(1, keepdims=True)
        np.testing.assert_allclose(result.observations[:, i], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.states, result.observations.reshape(2, -1))
    np.testing.assert_allclose(result.observations.mean(-1), 0, atol=1e-5)
    assert reference_observations(np.zeros((4, 5, 11)), 3).shape == (4, 5, 3, 14)


def test_finished_slots_stay_frozen_and_time_limit_truncates():
    env = make_env("mamujoco", "Hopper-3x1", num_envs=2, max_steps=20)
    env.reset(0)
    # Slot 0 falls quickly under a violent policy; slot 1 stands still until the limit.
    actions = np.zeros((2, 3, 1))
    actions[0] = 1.0
    steps = 0
    while True:
        result = env.step(actions)
        steps += 1
        if result.done[0] and steps < 20:
            frozen_obs = result.observations[0].copy()
        if result.done.all():
            break
    assert steps == 20 and result.truncated[1] and not result.terminated[1]
    if result.terminated[0]:
        np.testing.assert_array_equal(result.observations[0], frozen_obs)
        assert result.rewards[0] == 0


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="obs_mode"):
        make_env("mamujoco", "Hopper-3x1", num_envs=1, obs_mode="global")
    with pytest.raises(ConfigError, match="Scenario"):
        make_env("mamujoco", "Hopper", num_envs=1)
    with pytest.raises(ConfigError, match="cannot build"):
        make_env("mamujoco", "Hopper-7x9", num_envs=1)
    with pytest.raises(ConfigError, match="evaluation refused"):
        make_env("mamujoco", "Ant-2x4", num_envs=1, observation_version="v2")
    assert env_spec("mamujoco", "Ant-2x4", observation_version="v2").dims.obs_dim == 113
    assert env_spec("mamujoco", "Hopper-3x1", observation_version="v2").dims.obs_dim == 14


def test_env_options_from_config_and_card():
    """The env layer's option handling: episode limit, MaMuJoCo modes, refusals (no simulator)."""
    from omegaconf import OmegaConf

    from omiga_pl.config import EnvConfig
    from omiga_pl.envs import env_options

    def env(**values):
        return OmegaConf.merge(OmegaConf.structured(EnvConfig), values)

    card = {"episode_limit": 500, "obs_mode": "local", "agent_obsk": 2, "observation_version": "v5"}
    assert env_options("mamujoco", env(), card, eval_enabled=True) == {
        "max_steps": 500,
        "obs_mode": "local",
        "agent_obsk": 2,
        "observation_version": "v5",
    }
    assert env_options("smax", env(episode_limit=40), {"episode_limit": 100}, True) == {"max_steps": 40}
    with pytest.raises(ConfigError, match=r"^config: key 'env.obs_mode': only used by env.family mamujoco"):
        env_options("smax", env(obs_mode="local"), {}, True)
    with pytest.raises(ConfigError, match=r"^config: key 'env.agent_obsk': .* use agent_obsk=2, found 1$"):
        env_options("mamujoco", env(agent_obsk=1), card, True)
    refused = {"evaluation_refused": "v2 observations"}
    with pytest.raises(ConfigError, match=r"^config: key 'eval.enabled': evaluation refused .*: v2 obs"):
        env_options("mamujoco", env(), refused, eval_enabled=True)
    assert env_options("mamujoco", env(), refused, eval_enabled=False)["obs_mode"] == "reference"
