"""The real-SMAC adapter against a fake ``smac.env.StarCraft2Env`` that follows SMAC's API."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from omiga_pl.envs import env_spec, make_env
from omiga_pl.errors import ConfigError
from omiga_pl.rollout import rollout


class FakeStarCraft2Env:
    """SMAC's documented API on a toy battle: 2 agents, obs 4, state 6, 3 actions.

    Reward 0.5 per step; agent 1 dies after the first step (zero obs, only no-op);
    the battle is won when agent 0 plays action 2 at step >= 2; SMAC's own time limit
    (``episode_limit``) ends it with ``terminated`` and ``info["episode_limit"]``.
    """

    launched: list[dict] = []  # noqa: RUF012 - a test log of constructor calls

    def __init__(self, map_name="3m", seed=None, episode_limit=5, fail_reset=False):
        self.map_name, self.seed, self.limit, self.fail_reset = map_name, seed, episode_limit, fail_reset
        FakeStarCraft2Env.launched.append({"map_name": map_name, "seed": seed})
        self.t = 0

    def get_env_info(self):
        return {"state_shape": 6, "obs_shape": 4, "n_actions": 3, "n_agents": 2, "episode_limit": self.limit}

    def reset(self):
        if self.fail_reset:
            raise OSError("SC2 binary not found at /root/StarCraftII")
        self.t = 0
        return self.get_obs(), self.get_state()

    def step(self, actions):
        assert all(isinstance(a, int) for a in actions)
        self.t += 1
        won = actions[0] == 2 and self.t >= 2
        info = {"battle_won": won} if won else {}
        if self.t >= self.limit and not won:
            info = {"battle_won": False, "episode_limit": True}
        return 0.5, won or self.t >= self.limit, info

    def get_obs(self):
        return [np.full(4, self.t + 1.0, np.float32), np.zeros(4, np.float32) if self.t >= 1 else np.ones(4)]

    def get_state(self):
        return np.arange(6, dtype=np.float32) + self.t

    def get_avail_actions(self):
        return [[1, 1, 1], [1, 0, 0] if self.t >= 1 else [0, 1, 1]]

    def close(self):
        pass


@pytest.fixture
def fake_smac(monkeypatch):
    package, module = types.ModuleType("smac"), types.ModuleType("smac.env")
    module.StarCraft2Env = FakeStarCraft2Env
    package.env = module
    monkeypatch.setitem(sys.modules, "smac", package)
    monkeypatch.setitem(sys.modules, "smac.env", module)
    FakeStarCraft2Env.launched = []
    return module


def test_spec_steps_win_truncation_and_dead_units(fake_smac):
    spec = env_spec("smac", "3m")
    assert spec.dims.as_dict() == {
        "n_agents": 2,
        "obs_dim": 4,
        "state_dim": 6,
        "action_type": "discrete",
        "action_dim": 3,
    }
    assert spec.episode_limit == 5 and spec.has_win_signal
    env = make_env("smac", "3m", num_envs=2)
    first = env.reset(seed=11)
    seeds = [c["seed"] for c in FakeStarCraft2Env.launched if c["seed"] is not None]
    assert seeds == [int(s) for s in np.random.SeedSequence(11).generate_state(2, np.uint32)]
    np.testing.assert_array_equal(first.avail_actions[0], [[1, 1, 1], [0, 1, 1]])
    # Slot 0 wins at step 2; slot 1 never plays 2 and is cut off by SMAC's limit.
    script = iter([[[0, 0], [0, 0]], [[2, 0], [1, 0]]] + [[[0, 0], [1, 0]]] * 3)
    stats = rollout(env, lambda r: np.array(next(script)), seed=11, record=True)
    np.testing.assert_array_equal(stats.lengths, [2, 5])
    np.testing.assert_allclose(stats.returns, [1.0, 2.5])
    np.testing.assert_array_equal(stats.won, [True, False])
    traj = stats.trajectory
    assert traj.terminated[1].tolist() == [True, False]
    assert not traj.terminated[4, 1] and traj.truncated[4, 1]
    # Dead unit: zero observation, only the no-op, as SMAC gives it.
    np.testing.assert_array_equal(traj.observations[1, 0, 1], np.zeros(4))
    np.testing.assert_array_equal(traj.avail_actions[1, 0, 1], [1, 0, 0])
    # Slot 0 frozen after its win: same observation, no reward.
    np.testing.assert_array_equal(traj.observations[4, 0], traj.observations[2, 0])
    assert traj.rewards[2:, 0].sum() == 0
    # Games are launched once; later resets reuse them.
    launched = len(FakeStarCraft2Env.launched)
    env.reset(seed=12)
    assert len(FakeStarCraft2Env.launched) == launched


def test_missing_package_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "smac", None)
    with pytest.raises(ConfigError) as error:
        make_env("smac", "3m", num_envs=1)
    message = str(error.value)
    assert "\n" not in message and "oxwhirl/smac" in message and "SMAC3" in message


def test_smac3_instead_of_smac_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "smac", types.ModuleType("smac"))  # SMAC3 has no smac.env
    monkeypatch.setitem(sys.modules, "smac.env", None)
    with pytest.raises(ConfigError, match="not PyPI's 'smac'"):
        env_spec("smac", "3m")


def test_missing_game_is_one_line(fake_smac, monkeypatch):
    original = FakeStarCraft2Env.__init__

    def failing(self, map_name="3m", seed=None, episode_limit=5):
        original(self, map_name, seed, episode_limit, fail_reset=True)

    monkeypatch.setattr(FakeStarCraft2Env, "__init__", failing)
    env = make_env("smac", "3m", num_envs=1)
    with pytest.raises(ConfigError) as error:
        env.reset(seed=0)
    assert "\n" not in str(error.value) and "StarCraft II failed to start" in str(error.value)
    assert "SC2PATH" in str(error.value)
