"""data.reward_scale: rewards scaled at load, refused when not positive, kept on resume, and
the invariance that motivates it (rewards and alpha scaled together leave OMIGA's weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from omiga_pl.config import load_config
from omiga_pl.data.datamodule import OfflineMARLDataModule
from omiga_pl.data.storage import TransitionStorage
from omiga_pl.errors import CheckpointError, ConfigError
from omiga_pl.losses.omiga import omiga_losses
from tests.test_storage import two_episodes

ROOT = Path(__file__).resolve().parent.parent
HOPPER = ROOT / "data" / "mamujoco_hopper_3x1_medium.h5"


def test_storage_scales_rewards_after_reward_to_go_and_leaves_the_dataset_alone():
    data = two_episodes()  # rewards [1, 2, 3 | 10, 20]
    scaled = TransitionStorage(data, reward_scale=0.5)
    np.testing.assert_array_equal(scaled.rewards.numpy(), [0.5, 1.0, 1.5, 5.0, 10.0])
    to_go = TransitionStorage(data, use_reward_to_go=True, reward_scale=0.5)
    np.testing.assert_array_equal(to_go.rewards.numpy(), [3.0, 2.5, 1.5, 15.0, 10.0])
    np.testing.assert_array_equal(data.rewards, [1, 2, 3, 10, 20])  # the input is not modified
    np.testing.assert_array_equal(TransitionStorage(data).rewards.numpy(), [1, 2, 3, 10, 20])


@pytest.mark.parametrize("value", ["0", "-0.1", "nan", "inf"])
def test_a_scale_that_is_not_positive_and_finite_is_refused_by_name(value):
    expected = rf"key 'data.reward_scale': expected a positive value, found {value}"
    with pytest.raises(ConfigError, match=expected):
        load_config([ROOT / "conf" / "mamujoco.yaml"], [f"data.reward_scale={value}"])
    with pytest.raises(ValueError, match="reward_scale: expected a positive finite number"):
        OfflineMARLDataModule(HOPPER, reward_scale=float(value))


def test_datamodule_serves_scaled_rewards_and_refuses_another_scale_on_resume():
    plain = OfflineMARLDataModule(HOPPER, storage_on_device=False)
    scaled = OfflineMARLDataModule(HOPPER, storage_on_device=False, reward_scale=0.1)
    torch.testing.assert_close(scaled.load().rewards, plain.load().rewards * np.float32(0.1))
    assert scaled.state_dict()["reward_scale"] == 0.1
    with pytest.raises(CheckpointError, match=r"field 'reward_scale' was 1.0 when saved"):
        scaled.check_state(plain.state_dict())
    assert scaled.check_state(scaled.state_dict()) == []


def test_scaling_rewards_and_alpha_together_leaves_the_advantage_weights():
    """Q, V and the mixer bias scale with the rewards at the fixed point; with alpha scaled
    alike, z (so the V and policy losses) is unchanged and the Q loss scales by c^2."""
    gen = torch.Generator().manual_seed(0)
    b, n, c = 16, 3, 0.1

    def rand(*shape):
        return torch.randn(*shape, generator=gen)

    weights, weights_t, next_weights_t = rand(b, n).abs(), rand(b, n).abs(), rand(b, n).abs()
    values = {"q_taken": rand(b, n), "bias": rand(b), "q_target_taken": rand(b, n), "values": rand(b, n)}
    values |= {"next_values_target": rand(b, n), "next_bias_target": rand(b), "rewards": rand(b)}
    common = {
        "weights": weights,
        "weights_target": weights_t,
        "next_weights_target": next_weights_t,
        "log_probs": rand(b, n),
        "masks": (rand(b) > -1).float(),
        "gamma": 0.99,
    }
    raw = omiga_losses(**values, **common, alpha=10.0)
    scaled = omiga_losses(**{k: v * c for k, v in values.items()}, **common, alpha=10.0 * c)
    torch.testing.assert_close(scaled.diagnostics["z_mean"], raw.diagnostics["z_mean"])
    torch.testing.assert_close(scaled.diagnostics["policy_weight_max"], raw.diagnostics["policy_weight_max"])
    torch.testing.assert_close(scaled.policy_loss, raw.policy_loss)
    torch.testing.assert_close(scaled.v_loss, raw.v_loss)
    torch.testing.assert_close(scaled.q_loss, raw.q_loss * c**2)
