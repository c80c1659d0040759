"""OMAR per-agent NumPy datasets -> native: boundaries, final rows, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omiga_pl.data.datamodule import OfflineMARLDataModule
from omiga_pl.data.formats.native import write_native
from omiga_pl.data.formats.omar_mpe import import_omar
from omiga_pl.data.formats.synthetic import write_omar
from omiga_pl.errors import DatasetError


@pytest.fixture
def omar(tmp_path):
    directory = tmp_path / "simple_spread" / "expert" / "seed_3_data"
    expected = write_omar(directory, n_episodes=4, episode_length=25, terminal_episodes=(2,))
    return directory, expected


def test_boundaries_final_rows_and_card(omar):
    directory, exp = omar
    data, card = import_omar(directory)
    assert data.episode_lengths.tolist() == [25] * 4
    for e in range(4):
        rows = slice(e * 26, e * 26 + 25)
        np.testing.assert_array_equal(data.observations[rows], exp["obs"][e * 25 : e * 25 + 25])
        np.testing.assert_array_equal(data.observations[e * 26 + 25], exp["next_obs"][e * 25 + 24])
    np.testing.assert_array_equal(data.actions, exp["acs"])
    np.testing.assert_array_equal(data.rewards, exp["rews"])
    assert np.flatnonzero(data.terminations).tolist() == [74]
    assert np.flatnonzero(data.truncations).tolist() == [24, 49, 99]
    assert data.states is None and data.dims.action_type == "continuous"
    assert (card["env_family"], card["scenario"], card["quality"], card["seed"]) == (
        "mpe",
        "simple_spread",
        "expert",
        3,
    )
    assert "boundaries inferred" in card["derived"]["episodes"]


def test_fixed_episode_length_and_one_hot_actions(tmp_path):
    directory = tmp_path / "d"
    exp = write_omar(directory, n_episodes=3, episode_length=5, one_hot=True)
    data, card = import_omar(directory, episode_length=5)
    assert data.dims.action_type == "discrete"
    np.testing.assert_array_equal(data.actions, exp["acs"].argmax(-1))
    assert card["episode_limit"] == 5 and "fixed episodes of 5" in card["derived"]["episodes"]
    with pytest.raises(DatasetError, match="15 steps is not a multiple of episode_length 4"):
        import_omar(directory, episode_length=4)


def test_states_and_round_trip_into_a_batch(omar, tmp_path):
    directory, exp = omar
    state = np.random.default_rng(0).standard_normal((100, 7)).astype(np.float32)
    for i in range(3):
        np.save(directory / f"states_{i}.npy", state)
        np.save(directory / f"next_states_{i}.npy", state + 1)
    data, card = import_omar(directory)
    assert data.dims.state_dim == 7 and "identical for all agents" in card["derived"]["states"]
    np.testing.assert_array_equal(data.states[25], state[24] + 1)
    path = tmp_path / "omar.h5"
    write_native(path, data, card)
    module = OfflineMARLDataModule(path, batch_size=4, storage_on_device=False)
    module.load()
    batch = module.on_after_batch_transfer(torch.tensor([24, 74]), 0)
    np.testing.assert_array_equal(batch.next_observations[0].numpy(), exp["next_obs"][24])
    assert batch.masks.tolist() == [1.0, 0.0]


def _save(directory, name, array, **kwargs):
    np.save(directory / name, array, **kwargs)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "acs_1.npy").unlink(), r"acs_1\.npy: file not found"),
        (lambda d: (d / "obs_1.npy").unlink(), r"field 'obs_1\.npy': missing \(found agents \[0, 2\]\)"),
        (
            lambda d: (d / "obs_0.npy").write_bytes((d / "obs_0.npy").read_bytes()[:500]),
            r"obs_0\.npy: not a readable \.npy file \(truncated or corrupt\?\)",
        ),
        (
            lambda d: _save(d, "rews_1.npy", np.array([None] * 100, dtype=object), allow_pickle=True),
            r"rews_1\.npy: holds Python objects",
        ),
        (
            lambda d: _save(d, "rews_2.npy", np.zeros(99, np.float32)),
            r"field 'rews': agents disagree on steps",
        ),
        (
            lambda d: _save(d, "dones_0.npy", np.zeros(90, np.float32)),
            r"field 'dones': agents disagree on steps",
        ),
        (lambda d: _save(d, "obs_2.npy", np.zeros((100, 16), np.float32)), r"one observation size for all"),
        (
            lambda d: _save(d, "obs_1.npy", np.full((100, 18), np.inf, np.float32)),
            r"field 'obs': expected finite values, found inf",
        ),
        (
            lambda d: _save(d, "acs_0.npy", np.full((100, 5), "a")),
            r"field 'acs': expected numbers, found text",
        ),
        (
            lambda d: _save(d, "acs_0.npy", np.full((100, 5), 3.0, np.float32)),
            r"continuous actions in \[-1, 1\]",
        ),
    ],
)
def test_bad_inputs_give_one_clear_error(omar, damage, message):
    directory, _ = omar
    damage(directory)
    with pytest.raises(DatasetError, match=message) as caught:
        import_omar(directory)
    assert "\n" not in str(caught.value)


def test_empty_and_foreign_directories(tmp_path):
    with pytest.raises(DatasetError, match="empty directory"):
        import_omar(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"obs_0\.npy': missing: not an OMAR dataset"):
        import_omar(tmp_path)
