"""``python -m omiga_pl.generate``: a tiny SMAX dataset end to end, through the CLI.

Each CLI run pays the jaxmarl import (~5 s) and the SMAX compile (~10-15 s), so the
module generates once and reuses the file; the determinism test regenerates it in a
fresh process. The subprocesses share a JAX persistent compilation cache in a temporary
directory, so that second run loads the executables the first one compiled (same
programs, so the bytes must still match; only the wait is shorter).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from omiga_pl.data.formats.native import read_native, sidecar_path
from omiga_pl.io import sha256_file
from omiga_pl.rollout import EpisodeStats, Trajectory, episode_rows

REPO = Path(__file__).resolve().parents[1]
# 7 episodes over 4 slots: two batches, the second one only partly kept. The short episode
# limit makes some battles end by truncation, others by termination.
ARGS = shlex.split(
    "--env smax --scenario 3m --quality poor --episodes 7 --seed 3 --num-envs 4 "
    "--reference-episodes 4 --max-steps 12"
)


Cli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """Runs ``python -m omiga_pl.generate ARGS`` from the repo root; returns the process."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "omiga_pl.generate", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


@pytest.fixture(scope="module")
def generated(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("gen") / "tiny.h5"
    proc = cli(*ARGS, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_cli_writes_a_valid_dataset_with_its_card(
    generated: tuple[Path, subprocess.CompletedProcess],
) -> None:
    out, proc = generated
    data, card = read_native(out)
    assert data.n_episodes == 7 and card["n_episodes"] == 7
    d = data.dims
    assert (d.n_agents, d.obs_dim, d.state_dim, d.action_dim) == (3, 75, 72, 8)
    assert data.episode_won is not None and data.states is not None and data.avail_actions is not None
    for key in (
        "env_family",
        "env_version",
        "scenario",
        "episode_limit",
        "behaviour_policy",
        "quality",
        "epsilon",
        "seed",
        "num_envs",
        "command",
        "reference_returns",
        "versions",
        "win_rate",
        "return_mean",
    ):
        assert key in card, key
    assert (card["env_family"], card["scenario"], card["quality"], card["epsilon"]) == (
        "smax",
        "3m",
        "poor",
        0.5,
    )
    assert card["seed"] == 3 and card["episode_limit"] == 12
    assert set(card["reference_returns"]) == {"random", "behaviour_best"}
    assert card["reference_returns"]["behaviour_best"] > card["reference_returns"]["random"]
    assert card["command"].startswith("python -m omiga_pl.generate --env smax --scenario 3m --quality poor")
    assert "--overwrite" not in card["command"]
    np.testing.assert_allclose(card["return_mean"], data.episode_returns().mean())
    # Every episode ends with exactly one flag; rewards are finite team rewards.
    assert data.terminations.sum() + data.truncations.sum() == 7
    assert data.terminations.any() and data.truncations.any()
    assert (data.episode_lengths[data.truncations[np.cumsum(data.episode_lengths) - 1]] == 12).all()
    assert "--max-steps 12" in card["command"]
    # The sidecar carries the file's hash; progress went to stderr, the summary to stdout.
    assert f"| sha256 | {sha256_file(out)} |" in sidecar_path(out).read_text()
    assert "7/7 episodes" in proc.stderr
    assert sha256_file(out) in proc.stdout


def test_same_command_gives_identical_bytes(
    cli: Cli, generated: tuple[Path, subprocess.CompletedProcess]
) -> None:
    out, _ = generated
    before, card_before = sha256_file(out), sidecar_path(out).read_text()
    proc = cli(*ARGS, "--out", str(out), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert sha256_file(out) == before
    assert sidecar_path(out).read_text() == card_before


def test_existing_destination_is_refused(
    cli: Cli, generated: tuple[Path, subprocess.CompletedProcess]
) -> None:
    out, _ = generated
    before, mtime = sha256_file(out), out.stat().st_mtime_ns
    proc = cli(*ARGS, "--out", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert (
        lines[0].startswith("omiga_pl.generate: error: ")
        and "--overwrite" in lines[0]
        and str(out) in lines[0]
    )
    assert sha256_file(out) == before and out.stat().st_mtime_ns == mtime


def test_unknown_scenario_is_one_line_error(cli: Cli, tmp_path: Path) -> None:
    proc = cli("--scenario", "nope", "--quality", "good", "--out", str(tmp_path / "x.h5"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("omiga_pl.generate: error: --scenario")
    assert "'nope'" in lines[0] and "3m" in lines[0]
    assert not (tmp_path / "x.h5").exists()


def test_episode_rows_row_convention() -> None:
    """Two slots, lengths 2 and 3: rows back to back, each episode with its final row."""
    t_max, n, o = 3, 1, 1
    obs = np.arange((t_max + 1) * 2, dtype=np.float32).reshape(t_max + 1, 2, n, o)  # value = 2 * t + slot
    trajectory = Trajectory(
        observations=obs,
        states=obs[:, :, 0],
        avail_actions=np.ones((t_max + 1, 2, n, 2), dtype=bool),
        actions=np.zeros((t_max, 2, n), dtype=np.int64),
        rewards=np.arange(t_max * 2, dtype=np.float32).reshape(t_max, 2),
        terminated=np.array([[False, False], [True, False], [True, True]]),
        truncated=np.zeros((t_max, 2), dtype=bool),
        extras={"tag": obs[:, :, 0, 0] + 100},
    )
    lengths = np.array([2, 3])
    stats = EpisodeStats(np.zeros(2), lengths, np.array([True, False]), trajectory)
    out = episode_rows(stats, keep=2)
    np.testing.assert_array_equal(out["observations"][:, 0, 0], [0, 2, 4, 1, 3, 5, 7])
    np.testing.assert_array_equal(out["tag"], [100, 102, 104, 101, 103, 105, 107])
    np.testing.assert_array_equal(out["rewards"], [0, 2, 1, 3, 5])
    np.testing.assert_array_equal(out["terminations"], [False, True, False, False, True])
    np.testing.assert_array_equal(out["episode_lengths"], [2, 3])
    first = episode_rows(stats, keep=1)
    np.testing.assert_array_equal(first["observations"][:, 0, 0], [0, 2, 4])
    np.testing.assert_array_equal(first["episode_won"], [True])


def test_mamujoco_subcommand_is_the_mamujoco_generator(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``python -m omiga_pl.generate mamujoco ...`` is the MaMuJoCo generator's CLI (nothing trained)."""
    from omiga_pl.generate import main

    with pytest.raises(SystemExit) as exit_info:
        main(["mamujoco", "levels", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert (
        "python -m omiga_pl.generate mamujoco levels" in out
        and "--behaviour-dir" in out
        and "--select-episodes" in out
        and "--expert-select" in out
    )
    # The generator's own error path: a missing source file is a one-line error, status 2.
    code = main(
        ["mamujoco", "convert", str(tmp_path / "missing.h5"), str(tmp_path / "out.h5"), "--obs-mode", "local"]
    )
    assert code == 2
    assert capsys.readouterr().err.startswith("omiga_pl.generate mamujoco: error:")


def test_generate_mamujoco_is_the_same_cli_under_its_older_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Cards and the registry record ``python -m omiga_pl.generate_mamujoco ...`` commands."""
    from omiga_pl.generate_mamujoco import main

    with pytest.raises(SystemExit) as exit_info:
        main(["levels", "--help"])
    assert exit_info.value.code == 0
    assert "python -m omiga_pl.generate_mamujoco levels" in capsys.readouterr().out
    code = main(["convert", str(tmp_path / "missing.h5"), str(tmp_path / "out.h5"), "--obs-mode", "local"])
    assert code == 2
    assert capsys.readouterr().err.startswith("omiga_pl.generate_mamujoco: error:")


def test_mamujoco_subcommand_through_the_module_cli(cli: Cli) -> None:
    proc = cli("mamujoco", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "levels" in proc.stdout and "convert" in proc.stdout
