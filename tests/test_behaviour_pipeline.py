"""The MaMuJoCo behaviour pipeline end to end, tiny: ``scripts/train_behaviour.py`` (TD3,
resumed with its replay buffer) then ``python -m omiga_pl.generate mamujoco levels`` on its
output."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from omiga_pl.data.formats.native import read_card, read_native
from omiga_pl.generate.behaviour import sb3_policy
from omiga_pl.generate.mamujoco import RawEpisodes

ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, str(ROOT / "scripts" / "train_behaviour.py"), "--scenario", "Hopper-3x1"]
# A script's own directory, not the working directory, heads its sys.path: point it at
# this checkout's package (not whichever omiga_pl the interpreter has installed).
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def levels_argv(behaviour_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "omiga_pl.generate",
        "mamujoco",
        "levels",
        "--behaviour-dir",
        str(behaviour_dir),
    ]


@pytest.fixture(scope="module")
def behaviour_dir(tmp_path_factory) -> Path:
    """400 TD3 steps in two checkpoints, then resumed to 600 (all warm-up: no learning)."""
    out = tmp_path_factory.mktemp("behaviour") / "Hopper-3x1"
    common = ["--algo", "td3", "--checkpoint-every", "200", "--eval-episodes", "1", "--out", str(out)]
    run([*TRAIN, "--total-steps", "400", *common], cwd=out.parent)
    first = json.loads((out / "progress.json").read_text())
    assert [c["step"] for c in first["checkpoints"]] == [200, 400]
    stdout = run([*TRAIN, "--total-steps", "600", *common], cwd=out.parent)
    assert "resuming" in stdout and "at 400 steps" in stdout
    return out


def test_resume_continues_the_replay_buffer(behaviour_dir: Path) -> None:
    progress = json.loads((behaviour_dir / "progress.json").read_text())
    assert progress["algo"] == "td3" and progress["steps"] == 600
    assert [c["step"] for c in progress["checkpoints"]] == [200, 400, 600]
    hp = progress["hyperparameters"]
    assert hp["batch_size"] == 100 and hp["action_noise_std"] == 0.1
    assert hp["buffer_size"] == 400  # planned run of the first command
    with open(behaviour_dir / "replay_buffer.pkl", "rb") as handle:
        buffer = pickle.load(handle)
    # A fresh buffer after the resume would hold 200 transitions and not be full; the
    # loaded one wrapped around: 600 transitions through 400 slots.
    assert buffer.buffer_size == 400 and buffer.full and buffer.pos == 200
    # Every recorded training episode is in some replay chunk.
    chunks = sorted(behaviour_dir.glob("replay_*.npz"))
    recorded = sum(int(np.load(p)["lengths"].size) for p in chunks)
    assert recorded == sum(c["train_episodes"] for c in progress["checkpoints"])


def test_td3_behaviour_samples_greedy_action_plus_recorded_noise(behaviour_dir: Path) -> None:
    states = np.random.default_rng(3).normal(size=(5, 11))
    greedy = sb3_policy(behaviour_dir, 600, deterministic=True)(states, np.random.default_rng(0))
    noisy = sb3_policy(behaviour_dir, 600)(states, np.random.default_rng(7))
    expected = np.clip(greedy + np.random.default_rng(7).normal(0.0, 0.1, greedy.shape), -1.0, 1.0)
    np.testing.assert_allclose(noisy, expected, atol=1e-6)


def test_levels_from_a_td3_run(behaviour_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    argv = levels_argv(behaviour_dir)
    argv += ["--episodes", "3", "--random-episodes", "3", "--select-episodes", "2", "--num-envs", "3"]
    run([*argv, "--replay-fraction", "0.5", "--out-dir", str(out), "--prefix", "hop"], cwd=ROOT)
    cards = {
        level: read_card(out / f"hop_{level}.h5")
        for level in ("expert", "medium", "medium_replay", "medium_expert")
    }
    for card in cards.values():
        assert card["scenario"] == "Hopper-3x1" and card["behaviour_training_steps"] == 600
        assert card["reference_returns"]["expert"] == pytest.approx(cards["expert"]["return_mean"])
    assert (
        "TD3" in cards["expert"]["behaviour_policy"]
        and "noise (std 0.1)" in cards["expert"]["behaviour_policy"]
    )
    episodes = {level: card["n_episodes"] for level, card in cards.items()}
    assert episodes["medium_expert"] == episodes["expert"] + episodes["medium"] == 6
    data, _ = read_native(out / "hop_medium_expert.h5")
    assert data.n_episodes == 6
    # medium-replay = the recorded training episodes up to the medium checkpoint.
    progress = json.loads((behaviour_dir / "progress.json").read_text())
    medium_step = int(cards["medium"]["behaviour_policy"].split("checkpoint ")[1].split(" ")[0])
    expected = sum(c["train_episodes"] for c in progress["checkpoints"] if c["step"] <= medium_step)
    assert episodes["medium_replay"] == round(0.5 * expected) > 0
    assert (
        f"subsample of {round(0.5 * expected)} of its {expected} episodes"
        in cards["medium_replay"]["behaviour_policy"]
    )


def test_select_keeps_whole_episodes() -> None:
    # Episodes of 2, 1 and 3 steps: rows 3 + 2 + 4, each row tagged by (episode, row in it).
    lengths = np.array([2, 1, 3])
    rows = np.array([10, 11, 12, 20, 21, 30, 31, 32, 33], dtype=np.float32)
    steps = np.array([1, 2, 5, 7, 8, 9], dtype=np.float32)
    raw = RawEpisodes(
        global_states=rows[:, None],
        local_observations=rows[:, None, None],
        actions=steps[:, None, None],
        rewards=steps,
        lengths=lengths,
        terminated=np.array([True, False, True]),
    )
    picked = raw.select(np.array([0, 2]))
    np.testing.assert_array_equal(picked.global_states[:, 0], [10, 11, 12, 30, 31, 32, 33])
    np.testing.assert_array_equal(picked.rewards, [1, 2, 7, 8, 9])
    np.testing.assert_array_equal(picked.lengths, [2, 3])
    np.testing.assert_array_equal(picked.terminated, [True, True])
    np.testing.assert_array_equal(picked.returns(), [3, 24])


def test_replay_fraction_out_of_range_is_refused(behaviour_dir: Path, tmp_path: Path) -> None:
    argv = levels_argv(behaviour_dir)
    done = subprocess.run(
        [*argv, "--replay-fraction", "0", "--out-dir", str(tmp_path), "--prefix", "x"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--replay-fraction: expected a number in (0, 1], found 0.0" in done.stderr
    assert not list(tmp_path.iterdir())


def test_resuming_with_another_algo_is_refused(behaviour_dir: Path) -> None:
    before = (behaviour_dir / "progress.json").read_text()
    done = subprocess.run(
        [*TRAIN, "--algo", "sac", "--total-steps", "800", "--out", str(behaviour_dir)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2
    assert (
        "progress.json: field 'algo': this run directory was started with --algo td3, found --algo sac"
        in (done.stderr)
    )
    assert (behaviour_dir / "progress.json").read_text() == before
