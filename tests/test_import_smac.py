"""OMIGA / MADT SMAC episode directories -> native: values, round trip, every bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import source_hashes

from omiga_pl.data.datamodule import OfflineMARLDataModule
from omiga_pl.data.formats.native import read_native, write_native
from omiga_pl.data.formats.smac_episodes import import_smac_episodes
from omiga_pl.data.formats.synthetic import write_smac_episodes
from omiga_pl.errors import DatasetError

# 11 files: natural order puts 10.pt last, plain string order would put it third.
LENGTHS = [4, 2, 6, 3, 5, 2, 7, 3, 4, 2, 5]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    directory = tmp_path_factory.mktemp("smac") / "3m" / "good"
    expected = write_smac_episodes(directory, LENGTHS, n_agents=3, obs_dim=75, state_dim=24, n_actions=8)
    return directory, expected


@pytest.fixture
def copy(written, tmp_path):
    """A fresh copy of the clean episode directory to damage."""
    target = tmp_path / "3m" / "good"
    shutil.copytree(written[0], target)
    return target


def load_raw(path: Path):
    return torch.load(path, weights_only=False)


def test_values_follow_the_reference_construction(written):
    directory, exp = written
    data, card = import_smac_episodes(directory)
    lengths = np.array(LENGTHS)
    assert data.episode_lengths.tolist() == LENGTHS
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for e, (start, length) in enumerate(zip(starts, lengths)):
        row = start + e  # E extra rows before episode e
        steps = slice(start, start + length)
        np.testing.assert_array_equal(data.observations[row : row + length], exp["obs"][steps])
        np.testing.assert_array_equal(data.observations[row + length], exp["obs"][start + length - 1])
        np.testing.assert_array_equal(
            data.states[row : row + length], exp["state"][steps].reshape(length, -1)
        )
        np.testing.assert_array_equal(data.avail_actions[row : row + length], exp["avail"][steps])
    np.testing.assert_array_equal(data.actions, exp["actions"])
    np.testing.assert_array_equal(data.rewards, exp["rewards"][:, 0])
    ends = np.cumsum(lengths) - 1
    assert np.flatnonzero(data.terminations).tolist() == ends.tolist()
    assert not data.truncations.any()
    assert (data.dims.state_dim, data.dims.obs_dim, data.dims.action_dim) == (72, 75, 8)
    assert card["scenario"] == "3m" and card["quality"] == "good" and card["env_family"] == "smac"
    assert card["episode_limit"] == 60 and card["source_files"] == 11
    for key in ("observations", "states", "terminations", "truncations", "rewards", "source_done_flags"):
        assert key in card["derived"]
    assert "11 of 11 episodes" in card["derived"]["source_done_flags"]


def test_round_trip_into_a_training_batch_leaves_sources_untouched(written, tmp_path):
    directory, exp = written
    before = source_hashes(directory)
    data, card = import_smac_episodes(directory)
    path = tmp_path / "smac.h5"
    write_native(path, data, card)
    loaded, stored = read_native(path)
    np.testing.assert_array_equal(loaded.observations, data.observations)
    assert stored["derived"] == card["derived"]
    module = OfflineMARLDataModule(path, batch_size=8, storage_on_device=False)
    storage = module.load()
    batch = module.on_after_batch_transfer(torch.arange(storage.n_transitions), 0)
    assert batch.observations.shape == (sum(LENGTHS), 3, 75)
    assert batch.states.shape == (sum(LENGTHS), 72)
    ends = np.cumsum(LENGTHS) - 1
    masks = np.ones(sum(LENGTHS), dtype=np.float32)
    masks[ends] = 0.0
    np.testing.assert_array_equal(batch.masks.numpy(), masks)
    # The final transition's next observation is the repeated last observation.
    np.testing.assert_array_equal(batch.next_observations[3].numpy(), exp["obs"][3])
    # Inside an episode the next observation is the following step's.
    np.testing.assert_array_equal(batch.next_observations[0].numpy(), exp["obs"][1])
    assert source_hashes(directory) == before


def test_episode_limit_marks_full_length_episodes_truncated(written):
    data, card = import_smac_episodes(written[0], episode_limit=7)
    assert data.truncations.sum() == 1 and data.terminations.sum() == len(LENGTHS) - 1
    assert "exactly 7 steps" in card["derived"]["truncations"]


def test_taken_unavailable_actions_are_repaired_and_counted(copy):
    episode = load_raw(copy / "0.pt")
    step = episode[1][2]
    step[5] = np.zeros_like(step[5])
    step[5][0] = 1.0
    step[2] = np.array([3])
    torch.save(episode, copy / "0.pt")
    data, card = import_smac_episodes(copy)
    assert "1 taken action(s)" in card["derived"]["avail_actions"]
    assert data.avail_actions[2, 1, 3]


def test_skip_ragged_skips_and_says_so(copy):
    episode = load_raw(copy / "2.pt")
    episode[1] = episode[1][:-1]
    torch.save(episode, copy / "2.pt")
    with pytest.raises(DatasetError, match=r"2\.pt: field 'episode': ragged episode"):
        import_smac_episodes(copy)
    data, card = import_smac_episodes(copy, skip_ragged=True)
    assert data.n_episodes == len(LENGTHS) - 1
    assert "2.pt" in card["derived"]["episodes"]


def _mutate_step(directory: Path, name: str, agent: int, step: int, item: int, value) -> None:
    episode = load_raw(directory / name)
    episode[agent][step][item] = value
    torch.save(episode, directory / name)


def _truncate(directory: Path) -> None:
    path = directory / "3.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(directory: Path) -> None:
    (directory / "3.pt").write_bytes(os.urandom(2000))


def _strings(directory: Path) -> None:
    _mutate_step(directory, "4.pt", 0, 1, 1, np.array(["x"] * 75))


def _nan(directory: Path) -> None:
    obs = load_raw(directory / "5.pt")[2][1][1].copy()
    obs[7] = np.nan
    _mutate_step(directory, "5.pt", 2, 1, 1, obs)


def _obs_size(directory: Path) -> None:
    _mutate_step(directory, "6.pt", 1, 0, 1, np.zeros(80, dtype=np.float32))


def _five_items(directory: Path) -> None:
    episode = load_raw(directory / "7.pt")
    episode[0][2] = episode[0][2][:5]
    torch.save(episode, directory / "7.pt")


def _agent_count(directory: Path) -> None:
    episode = load_raw(directory / "8.pt")
    torch.save(episode[:2], directory / "8.pt")


def _fractional_action(directory: Path) -> None:
    _mutate_step(directory, "9.pt", 0, 0, 2, np.array([1.5]))


def _action_out_of_range(directory: Path) -> None:
    _mutate_step(directory, "9.pt", 0, 0, 2, np.array([8]))


def _not_a_list(directory: Path) -> None:
    torch.save({"obs": np.zeros(3)}, directory / "1.pt")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncate, r"3\.pt: cannot be unpickled \(truncated or corrupt file\?\)"),
        (_garbage, r"3\.pt: cannot be unpickled"),
        (_strings, r"4\.pt: field 'obs': expected numbers, found text \(dtype <U"),
        (_nan, r"5\.pt: field 'obs': expected finite values, found nan at agent 2 step 1"),
        (_obs_size, r"6\.pt: field 'obs': inconsistent sizes: .* agent 1 step 0 has \(80,\)"),
        (_five_items, r"7\.pt: field 'agent 0 step 2': expected 6 items"),
        (_agent_count, r"8\.pt: field 'state': agent count differs from the first episode \(0\.pt\)"),
        (_fractional_action, r"9\.pt: field 'action': expected whole-number action indices, found 1\.5"),
        (_action_out_of_range, r"9\.pt: field 'action': expected action indices in \[0, 8\)"),
        (_not_a_list, r"1\.pt: expected a non-empty list over agents, found dict"),
    ],
)
def test_bad_episode_files_give_one_clear_error(copy, damage, message):
    damage(copy)
    with pytest.raises(DatasetError, match=message) as caught:
        import_smac_episodes(copy)
    assert "\n" not in str(caught.value)


def test_empty_and_nested_directories(tmp_path, written):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="empty directory: no episode files"):
        import_smac_episodes(empty)
    with pytest.raises(DatasetError, match=r"sub-directories \['good'\]: pass one of them"):
        import_smac_episodes(written[0].parent)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_code_in_a_pickle_is_refused_not_run(copy, tmp_path):
    marker = tmp_path / "ran"
    torch.save([_Payload(marker)], copy / "0.pt")
    with pytest.raises(DatasetError, match=r"0\.pt: refused to unpickle 'os\.makedirs'.*--trust-pickle"):
        import_smac_episodes(copy)
    assert not marker.exists()


def test_plain_pickle_and_legacy_torch_files_load(copy):
    import pickle

    episode = load_raw(copy / "0.pt")
    with open(copy / "0.pt", "wb") as handle:
        pickle.dump(episode, handle, protocol=2)
    torch.save(load_raw(copy / "1.pt"), copy / "1.pt", _use_new_zipfile_serialization=False)
    data, _ = import_smac_episodes(copy)
    assert data.episode_lengths.tolist() == LENGTHS


def test_reward_with_several_values_per_step_names_the_file(copy):
    _mutate_step(copy, "2.pt", 1, 0, 3, np.array([0.5, 0.5], dtype=np.float32))
    with pytest.raises(DatasetError, match=r"2\.pt: field 'reward': (inconsistent sizes|expected one value)"):
        import_smac_episodes(copy)


def test_parallel_workers_give_the_same_dataset_and_errors(written, copy):
    serial, _ = import_smac_episodes(written[0])
    parallel, _ = import_smac_episodes(written[0], workers=2)
    for field in ("observations", "states", "avail_actions", "actions", "rewards", "terminations"):
        np.testing.assert_array_equal(getattr(parallel, field), getattr(serial, field))
    _nan(copy)
    with pytest.raises(DatasetError, match=r"5\.pt: field 'obs': expected finite values, found nan"):
        import_smac_episodes(copy, workers=2)
