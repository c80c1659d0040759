"""pymarl / OffPyMARL episode-buffer importer: values, padding, detection, CLI, errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import h5py
import numpy as np
import pytest

from omiga_pl.data.formats.detect import detect_format, load_dataset
from omiga_pl.data.formats.native import read_native
from omiga_pl.data.formats.pymarl import import_pymarl
from omiga_pl.data.formats.synthetic import write_pymarl
from omiga_pl.errors import DatasetError

LENGTHS, CUT, T_MAX = [3, 5, 2], [False, True, False], 6


@pytest.fixture
def buffer(tmp_path):
    path = tmp_path / "3m_medium.h5"
    return path, write_pymarl(path, LENGTHS, CUT, T_MAX)


def test_rows_steps_and_flags_match_the_buffer(buffer):
    path, raw = buffer
    data, card = import_pymarl(path)
    np.testing.assert_array_equal(data.episode_lengths, LENGTHS)
    expect_obs = np.concatenate([raw["obs"][b, : n + 1] for b, n in enumerate(LENGTHS)])
    np.testing.assert_array_equal(data.observations, expect_obs)  # final row included, no padding
    np.testing.assert_array_equal(
        data.states, np.concatenate([raw["state"][b, : n + 1] for b, n in enumerate(LENGTHS)])
    )
    np.testing.assert_array_equal(
        data.actions, np.concatenate([raw["actions"][b, :n, :, 0] for b, n in enumerate(LENGTHS)])
    )
    np.testing.assert_allclose(
        data.rewards, np.concatenate([raw["reward"][b, :n, 0] for b, n in enumerate(LENGTHS)])
    )
    assert data.terminations.tolist() == [0, 0, 1] + [0] * 5 + [0, 1]
    assert data.truncations.tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    assert data.avail_actions.shape == (sum(LENGTHS) + 3, 3, 6)
    assert card["episode_limit"] == T_MAX - 1 and card["ignored_keys"] == ["actions_onehot"]
    assert card["source_format"] == "pymarl"


def test_filled_counting_only_steps(tmp_path):
    path = tmp_path / "b.h5"
    raw = write_pymarl(path, LENGTHS, CUT, T_MAX, filled_counts="steps")
    data, _ = import_pymarl(path, filled_counts="steps")
    np.testing.assert_array_equal(data.episode_lengths, LENGTHS)
    np.testing.assert_array_equal(data.observations[LENGTHS[0]], raw["obs"][0, LENGTHS[0]])
    # The same file read as pymarl's default sees one step fewer per episode.
    other, _ = import_pymarl(path)
    np.testing.assert_array_equal(other.episode_lengths, [n - 1 for n in LENGTHS])


def test_directory_of_parts_is_concatenated_in_natural_order(tmp_path):
    write_pymarl(tmp_path / "part_10.h5", [4], [False], T_MAX, seed=2)
    write_pymarl(tmp_path / "part_2.h5", [2, 3], [False, False], T_MAX, seed=1)
    assert detect_format(tmp_path) == "pymarl"
    data, _, fmt = load_dataset(tmp_path)
    assert fmt == "pymarl" and data.episode_lengths.tolist() == [2, 3, 4]


def test_detection_and_cli_convert_are_atomic_and_read_only(buffer, tmp_path):
    path, _ = buffer
    assert detect_format(path) == "pymarl"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    out = tmp_path / "out" / "native.h5"
    out.parent.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "omiga_pl.data",
            "convert",
            str(path),
            str(out),
            "--set-env",
            "smac:3m",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    _, card = read_native(out)
    assert card["env_family"] == "smac" and card["scenario"] == "3m" and card["n_episodes"] == 3
    assert sorted(p.name for p in out.parent.iterdir()) == ["native.h5", "native.h5.md"]


def _edit(path, key, value):
    with h5py.File(path, "a") as handle:
        del handle[key]
        if value is not None:
            handle.create_dataset(key, data=value)


@pytest.mark.parametrize(
    ("key", "make", "message"),
    [
        (
            "filled",
            lambda a: np.concatenate([a["filled"][:, :1] * 0, a["filled"][:, 1:]], axis=1),
            "ones then zeros",
        ),
        ("terminated", lambda a: np.ones_like(a["terminated"]), "terminated at step 0"),
        ("reward", None, "missing"),
        ("obs", lambda a: a["obs"][0], "expected [B, T, N, O]"),
        ("actions", lambda a: a["actions"][:, :4], "leading shape"),
        ("actions", lambda a: a["actions"] + 10, "expected action indices in [0, 6)"),
        ("filled", lambda a: a["filled"] * 2, "expected only 0 and 1"),
        ("reward", lambda a: np.full_like(a["reward"], np.nan), "finite"),
    ],
)
def test_bad_buffers_fail_clearly(buffer, key, make, message):
    path, raw = buffer
    _edit(path, key, None if make is None else make(raw))
    with pytest.raises(DatasetError) as error:
        import_pymarl(path)
    text = str(error.value)
    assert str(path) in text and message in text and "\n" not in text
    assert f"'{key}'" in text or key in text
