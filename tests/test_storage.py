"""Transition building across episode boundaries, and the resumable sampler."""

from __future__ import annotations

import numpy as np
import torch

from omiga_pl.data.datamodule import IndexStream, sample_indices
from omiga_pl.data.formats.native import EpisodeDataset
from omiga_pl.data.storage import TransitionStorage, reward_to_go


def two_episodes() -> EpisodeDataset:
    """Episode 0: 3 steps, terminated. Episode 1: 2 steps, truncated (time limit).

    Observation of agent a at row r is [r, a] so every gather is checkable by eye.
    Rows: ep0 -> 0,1,2 (+ final 3); ep1 -> 4,5 (+ final 6).
    """
    rows, n_agents = 7, 2
    obs = np.stack(
        [np.stack([np.full(1, r), np.full(1, a)], -1)[0] for r in range(rows) for a in range(n_agents)]
    )
    obs = obs.reshape(rows, n_agents, 2).astype(np.float32)
    return EpisodeDataset(
        observations=obs,
        states=np.arange(rows, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32),
        actions=np.array([[0, 1], [1, 0], [0, 0], [1, 1], [0, 1]], dtype=np.int64),
        avail_actions=np.ones((rows, n_agents, 2), dtype=bool),
        rewards=np.array([1, 2, 3, 10, 20], dtype=np.float32),
        terminations=np.array([0, 0, 1, 0, 0], dtype=bool),
        truncations=np.array([0, 0, 0, 0, 1], dtype=bool),
        episode_lengths=np.array([3, 2]),
    )


def test_rows_skip_each_final_observation():
    data = two_episodes()
    np.testing.assert_array_equal(data.transition_rows(), [0, 1, 2, 4, 5])


def test_next_observation_and_masks_across_boundaries():
    data = two_episodes()
    data.validate()
    storage = TransitionStorage(data)
    batch = storage.gather(torch.arange(5))
    # next observation row = row + 1: the last step of episode 0 sees its own final
    # observation (row 3), never the first observation of episode 1 (row 4).
    np.testing.assert_array_equal(batch.observations[:, 0, 0].numpy(), [0, 1, 2, 4, 5])
    np.testing.assert_array_equal(batch.next_observations[:, 0, 0].numpy(), [1, 2, 3, 5, 6])
    np.testing.assert_array_equal(batch.next_observations[:, 1, 1].numpy(), [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(batch.next_states[:, 0].numpy(), [1, 2, 3, 5, 6])
    # termination -> mask 0; truncation bootstraps -> mask 1; nothing else is 0.
    np.testing.assert_array_equal(batch.masks.numpy(), [1, 1, 0, 1, 1])
    np.testing.assert_array_equal(batch.actions.numpy(), data.actions)
    assert batch.observations.dtype == torch.float32
    assert batch.next_avail_actions.shape == (5, 2, 2)


def test_missing_state_falls_back_to_concatenated_observations():
    data = two_episodes()
    data.states = None
    storage = TransitionStorage(data)
    batch = storage.gather(torch.tensor([2]))
    assert storage.dims.state_dim == 4
    np.testing.assert_array_equal(batch.states.numpy(), [[2, 0, 2, 1]])
    # a view, not a copy: no extra memory
    assert storage.states.untyped_storage().data_ptr() == storage.observations.untyped_storage().data_ptr()


def test_reward_to_go_switch():
    data = two_episodes()
    np.testing.assert_array_equal(reward_to_go(data.rewards, data.episode_lengths), [6, 5, 3, 30, 20])
    storage = TransitionStorage(data, use_reward_to_go=True)
    np.testing.assert_array_equal(storage.rewards.numpy(), [6, 5, 3, 30, 20])


def test_sampler_is_a_pure_function_of_seed_rank_step():
    a = sample_indices(1000, 64, seed=3, rank=0, step=17)
    b = sample_indices(1000, 64, seed=3, rank=0, step=17)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, sample_indices(1000, 64, seed=3, rank=1, step=17))
    assert not torch.equal(a, sample_indices(1000, 64, seed=3, rank=0, step=18))
    assert not torch.equal(a, sample_indices(1000, 64, seed=4, rank=0, step=17))
    assert a.dtype == torch.int64 and int(a.min()) >= 0 and int(a.max()) < 1000


def test_stream_resumes_at_the_given_step():
    straight = iter(IndexStream(100, 8, seed=0, rank=0, start_step=lambda: 0))
    first_ten = [next(straight) for _ in range(10)]
    resumed = iter(IndexStream(100, 8, seed=0, rank=0, start_step=lambda: 6))
    for expected in first_ten[6:]:
        torch.testing.assert_close(next(resumed), expected)


def test_sampler_covers_dataset_uniformly():
    counts = torch.zeros(10)
    for step in range(200):
        counts += torch.bincount(sample_indices(10, 50, 0, 0, step), minlength=10)
    assert counts.min() > 800 and counts.max() < 1200  # 1000 expected per index
