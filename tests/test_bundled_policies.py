"""Bundled behaviour policies: ``generate mamujoco export`` from a (tiny) TD3 run, the numpy
actor against stable-baselines3's, ``generate mamujoco --policy ... --transitions N`` and
its squashed-noise option, and the saturated share that ``data inspect`` prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from omiga_pl.data.formats.native import read_card, read_native
from omiga_pl.generate.bundled import BELOW_ONE, NumpyActor, actor_from_sb3, joint_policy, segment_transitions

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
GENERATE = [sys.executable, "-m", "omiga_pl.generate", "mamujoco"]


def run(args: list[str], cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    if ok:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def behaviour_dir(tmp_path_factory) -> Path:
    """300 TD3 steps, checkpoints at 150 and 300 (warm-up only: the actors are their init)."""
    out = tmp_path_factory.mktemp("behaviour") / "Hopper-3x1"
    script = [sys.executable, str(ROOT / "scripts" / "train_behaviour.py"), "--scenario", "Hopper-3x1"]
    run(
        [
            *script,
            "--total-steps",
            "300",
            "--checkpoint-every",
            "150",
            "--eval-episodes",
            "1",
            "--out",
            str(out),
        ],
        out.parent,
    )
    return out


@pytest.fixture(scope="module")
def policies(behaviour_dir: Path) -> dict[str, Path]:
    root = behaviour_dir.parent / "policies"
    expert, replay = root / "expert", root / "replay"
    common = ["--behaviour-dir", str(behaviour_dir), "--num-envs", "2", "--episodes", "2"]
    run(
        [*GENERATE, "export", *common, "--step", "300", "--level", "expert", "--out", str(expert)],
        root.parent,
    )
    run(
        [
            *GENERATE,
            *["export", *common, "--step", "300", "--level", "medium-replay", "--out", str(replay)],
            *["--dtype", "float16", "--reference-from", str(expert)],
        ],
        root.parent,
    )
    return {"expert": expert, "replay": replay}


def test_numpy_actor_is_the_sb3_greedy_action(behaviour_dir: Path) -> None:
    from omiga_pl.generate.behaviour import sb3_policy

    states = np.random.default_rng(3).normal(size=(7, 11)) * 3
    greedy = sb3_policy(behaviour_dir, 300, deterministic=True)(states, np.random.default_rng(0))
    actor = actor_from_sb3(behaviour_dir, 300)
    np.testing.assert_allclose(np.tanh(actor.pre_tanh(states)), greedy, atol=1e-5)
    assert [w.shape for w in actor.weights] == [(256, 11), (256, 256), (3, 256)]


def test_export_writes_a_card_and_checked_files(policies: dict[str, Path]) -> None:
    card = json.loads((policies["expert"] / "card.json").read_text())
    assert card["level"] == "expert" and card["training_steps"] == 300 and card["noise_std"] == 0.1
    assert card["reference_returns"]["expert"] == card["sampled_return"]["mean"]
    assert [s["policy"] for s in card["schedule"]] == ["policy_300.npz"]
    replay = json.loads((policies["replay"] / "card.json").read_text())
    # Warm-up (10k uniform steps) covers both checkpoints of this tiny run: one random segment.
    assert replay["schedule"] == [{"policy": None, "step": 0, "weight": 10000}]
    assert replay["reference_returns"] == card["reference_returns"]
    size = (policies["expert"] / "policy_300.npz").stat().st_size
    assert 250_000 < size < 320_000  # fp32 11-256-256-3 actor + normaliser


def test_sample_regenerates_whole_episodes_with_the_cards_references(policies, tmp_path) -> None:
    out = tmp_path / "expert.h5"
    done = run(
        [*GENERATE, "--policy", str(policies["expert"]), "--transitions", "150", "--out", str(out)], tmp_path
    )
    data, card = read_native(out)
    assert card["n_transitions"] >= 150 and card["n_transitions"] - int(data.episode_lengths[-1]) < 150
    assert (
        card["reference_returns"]
        == json.loads((policies["expert"] / "card.json").read_text())["reference_returns"]
    )
    assert card["action_noise"] == "gaussian" and "sample --policy" in card["command"]
    assert "150" in done.stdout or str(card["n_transitions"]) in done.stdout
    inspect = run([sys.executable, "-m", "omiga_pl.data", "inspect", str(out)], tmp_path).stdout
    share = float((np.abs(data.actions) >= 1.0).mean()) * 100
    assert f"saturated (exactly +-1) {share:.1f} % of entries" in inspect


def test_squashed_noise_never_returns_exactly_one(policies, tmp_path) -> None:
    out = tmp_path / "squashed.h5"
    args = ["--policy", str(policies["expert"]), "--transitions", "100", "--noise", "squashed"]
    run([*GENERATE, *args, "--out", str(out)], tmp_path)
    data, _ = read_native(out)
    assert np.abs(data.actions).max() <= BELOW_ONE < 1.0
    assert read_card(out)["action_noise"] == "squashed"


def test_squashed_noise_is_tanh_of_pre_tanh_plus_noise() -> None:
    actor = NumpyActor(
        weights=[np.array([[20.0], [-0.5]])],
        biases=[np.zeros(2)],
        obs_mean=np.zeros(1),
        obs_var=np.ones(1),
        obs_eps=0.0,
        obs_clip=10.0,
    )
    states = np.array([[1.0], [0.2]])
    eps = np.random.default_rng(4).normal(0.0, 0.3, (2, 2))
    squashed = joint_policy(actor, "squashed", 0.3, 2)(states, np.random.default_rng(4))
    gaussian = joint_policy(actor, "gaussian", 0.3, 2)(states, np.random.default_rng(4))
    u = states @ np.array([[20.0, -0.5]])
    np.testing.assert_allclose(squashed, np.clip(np.tanh(u + eps), -BELOW_ONE, BELOW_ONE))
    np.testing.assert_allclose(gaussian, np.clip(np.tanh(u) + eps, -1, 1))
    assert (np.abs(squashed) < 1.0).all() and np.isclose(np.abs(squashed[0, 0]), BELOW_ONE)


def test_segment_shares_sum_to_the_budget() -> None:
    schedule = [{"weight": 10000}, {"weight": 10000}, {"weight": 5000}]
    assert segment_transitions(schedule, 1_000_000) == [400000, 400000, 200000]
    assert sum(segment_transitions(schedule, 7)) == 7


def test_a_changed_policy_file_is_refused(policies, tmp_path) -> None:
    copy = tmp_path / "tampered"
    copy.mkdir()
    for file in policies["expert"].iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    z = dict(np.load(copy / "policy_300.npz"))
    z["b0"] = z["b0"] + 1
    np.savez(copy / "policy_300.npz", **z)
    done = run(
        [*GENERATE, "--policy", str(copy), "--transitions", "10", "--out", str(tmp_path / "x.h5")],
        tmp_path,
        ok=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "policy_300.npz" in done.stderr and "sha256" in done.stderr
    assert not (tmp_path / "x.h5").exists()


# Scenario of each bundled directory -> the prefix its name starts with.
BUNDLED_SCENARIOS = {"Hopper-3x1": "hopper_3x1_", "HalfCheetah-6x1": "halfcheetah_6x1_"}


@pytest.mark.parametrize(
    "policy_dir", sorted((ROOT / "data" / "policies").glob("*/card.json")), ids=lambda p: p.parent.name
)
def test_bundled_policy_directories_load(policy_dir: Path) -> None:
    from omiga_pl.generate.bundled import read_policy_card

    card = read_policy_card(policy_dir.parent)  # every file's sha256 against the card
    assert card["scenario"] in BUNDLED_SCENARIOS and policy_dir.parent.name.startswith(
        BUNDLED_SCENARIOS[card["scenario"]]
    )
    assert card["reference_returns"]["expert"] > card["reference_returns"]["random"]
    assert all(s["weight"] > 0 for s in card["schedule"])
    for segment in card["schedule"]:
        if segment["policy"] is not None:
            actor = NumpyActor.load(policy_dir.parent / segment["policy"])
            actions = np.tanh(actor.pre_tanh(np.zeros((4, actor.obs_mean.shape[-1]))))
            assert actions.shape == (4, card["action_dim"]) and np.isfinite(actions).all()


@pytest.mark.parametrize(
    "name",
    [
        "hopper_3x1_td3_expert",
        "hopper_3x1_td3_medium",
        "halfcheetah_6x1_td3_expert",
        "halfcheetah_6x1_td3_medium",
    ],
)
def test_bundled_policies_sample_the_returns_their_cards_record(name: str, tmp_path: Path) -> None:
    """The shipped actors, sampled by the generator as the cards say, return what the card
    recorded when they were exported (over 10 episodes: Hopper expert ~2990, medium ~930;
    HalfCheetah expert ~9310, medium ~3330)."""
    policy = ROOT / "data" / "policies" / name
    recorded = json.loads((policy / "card.json").read_text())
    out = tmp_path / f"{name}.h5"
    run([*GENERATE, "--policy", str(policy), "--transitions", "1000", "--out", str(out)], ROOT)
    card = read_card(out)
    assert card["n_transitions"] >= 1000 and card["quality"] == recorded["level"]
    assert card["scenario"] == recorded["scenario"]
    mean = recorded["sampled_return"]["mean"]
    assert 0.8 * mean < card["return_mean"] < 1.2 * mean, (card["return_mean"], mean)
