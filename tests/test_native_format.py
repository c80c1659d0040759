"""Native HDF5 round trip, dataset card, and one clear error per bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import make_episodes

from omiga_pl.data.compat import check_card_matches_env, check_dataset_matches_env
from omiga_pl.data.formats.native import read_card, read_native, sidecar_path, write_native
from omiga_pl.dims import ProblemDims
from omiga_pl.envs.base import EnvSpec
from omiga_pl.errors import DatasetError, OmigaError
from omiga_pl.io import sha256_file

SPEC_3M = EnvSpec(
    "smax",
    "3m",
    dims=ProblemDims(n_agents=3, obs_dim=75, state_dim=72, action_type="discrete", action_dim=8),
    episode_limit=100,
)


def test_round_trip_and_card(tmp_path):
    data = make_episodes([4, 6, 3], truncated_last=True)
    path = tmp_path / "d.h5"
    card = write_native(path, data, {"env_family": "smax", "scenario": "3m", "quality": "x"})
    loaded, stored = read_native(path)
    for name in (
        "observations",
        "states",
        "actions",
        "avail_actions",
        "rewards",
        "terminations",
        "truncations",
        "episode_lengths",
        "episode_won",
    ):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name), err_msg=name)
    returns = [data.rewards[:4].sum(), data.rewards[4:10].sum(), data.rewards[10:].sum()]
    assert stored["n_episodes"] == 3 and stored["n_transitions"] == 13
    assert stored["return_mean"] == pytest.approx(np.mean(returns), rel=1e-6)
    assert stored["n_truncations"] == 1 and stored["n_terminations"] == 2
    assert read_card(path) == stored
    sidecar = sidecar_path(path).read_text()
    assert card["sha256"] == sha256_file(path) and card["sha256"] in sidecar
    assert "| scenario | 3m |" in sidecar


def test_refuses_to_overwrite_and_leaves_file_untouched(tmp_path):
    path = tmp_path / "d.h5"
    write_native(path, make_episodes([3]), {})
    before = sha256_file(path)
    with pytest.raises(OmigaError, match="destination exists"):
        write_native(path, make_episodes([5]), {})
    assert sha256_file(path) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_failed_write_leaves_no_partial_file(tmp_path):
    bad = make_episodes([3])
    bad.rewards[1] = np.nan
    with pytest.raises(DatasetError):
        write_native(tmp_path / "d.h5", bad, {})
    assert list(tmp_path.iterdir()) == []


def write_then_edit(tmp_path, edit):
    path = tmp_path / "d.h5"
    write_native(path, make_episodes([4, 5]), {"env_family": "smax", "scenario": "3m"})
    with h5py.File(path, "a") as handle:
        edit(handle)
    return path


def replace(name, value):
    def edit(handle):
        del handle[name]
        handle[name] = value

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda h: h.__delitem__("rewards"), "field 'rewards': missing"),
        (
            replace("rewards", np.array([0, 1, np.nan, 0, 0, 0, 0, 0, 0], np.float32)),
            "field 'rewards': expected finite values, found nan at index [2]",
        ),
        (
            replace("observations", np.full((11, 3, 75), np.inf, np.float32)),
            "field 'observations': expected finite values, found inf",
        ),
        (
            replace("episode_lengths", np.zeros(0, np.int64)),
            "field 'episode_lengths': the dataset contains no episodes",
        ),
        (
            replace("actions", np.zeros((9, 2), np.int64)),
            "field 'actions': expected shape [9, 3], found [9, 2]",
        ),
        (
            replace("terminations", np.array([1, 0, 0, 1, 0, 0, 0, 0, 1], bool)),
            "field 'terminations': transition 0 is flagged done but is not the last step",
        ),
        (
            replace("rewards", np.zeros((9, 3), np.float32) + np.arange(3, dtype=np.float32)),
            "field 'rewards': expected one team reward per step, found per-agent rewards that differ",
        ),
        (replace("terminations", np.zeros(9, np.int64)), "field 'terminations': expected bool, found int64"),
    ],
)
def test_bad_fields_give_one_clear_error(tmp_path, edit, message):
    path = write_then_edit(tmp_path, edit)
    with pytest.raises(DatasetError) as caught:
        read_native(path)
    text = str(caught.value)
    assert str(path) in text and message in text
    assert "\n" not in text


def test_unavailable_dataset_action_is_reported(tmp_path):
    def edit(handle):
        avail = handle["avail_actions"][()]
        actions = handle["actions"][()]
        avail[0, 1, actions[0, 1]] = False
        del handle["avail_actions"]
        handle["avail_actions"] = avail

    with pytest.raises(DatasetError, match="transition 0, agent 1 took action .* unavailable"):
        read_native(write_then_edit(tmp_path, edit))


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(DatasetError, match="nope.h5: file not found"):
        read_native(tmp_path / "nope.h5")
    path = tmp_path / "d.h5"
    write_native(path, make_episodes([40] * 20), {})
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match="truncated.h5.*(truncated or corrupt)"):
        read_native(truncated)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(DatasetError, match="field 'card_json': missing file attribute"):
        read_native(foreign)


def test_env_mismatches_name_field_expected_and_found(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(DatasetError, match=r"field 'observations': agent count .* expected 3, found 4"):
        check_dataset_matches_env(path, make_episodes([3], n_agents=4), SPEC_3M)
    with pytest.raises(
        DatasetError, match=r"field 'observations': observation size .* expected 75, found 70"
    ):
        check_dataset_matches_env(path, make_episodes([3], obs_dim=70), SPEC_3M)
    with pytest.raises(DatasetError, match=r"field 'actions': actions per agent .* expected 8, found 9"):
        check_dataset_matches_env(path, make_episodes([3], n_actions=9), SPEC_3M)
    with pytest.raises(DatasetError, match=r"field 'states': state size .* expected 72, found 10"):
        check_dataset_matches_env(path, make_episodes([3], state_dim=10), SPEC_3M)
    check_dataset_matches_env(path, make_episodes([3]), SPEC_3M)
    with pytest.raises(DatasetError, match="card records '3m' but the config asks for '5m_vs_6m'"):
        check_card_matches_env(path, {"scenario": "3m"}, None, "5m_vs_6m")


def test_card_cannot_override_what_the_file_determines(tmp_path):
    stale = {"obs_dim": 999, "n_episodes": 7, "sha256": "0" * 64, "format_version": 0, "quality": "kept"}
    card = write_native(tmp_path / "d.h5", make_episodes([3, 4]), stale)
    stored = read_card(tmp_path / "d.h5")
    assert stored["obs_dim"] == card["obs_dim"] == 75
    assert stored["n_episodes"] == 2 and stored["quality"] == "kept"
    assert "sha256" not in stored and card["sha256"] == sha256_file(tmp_path / "d.h5")
