"""End-to-end ``python -m omiga_pl.fit --config conf/mamujoco.yaml``: continuous OMIGA on
MaMuJoCo with online evaluation, checkpoints and exact resume; dataset generation."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import QUIET, ROOT, fit_subprocess
from conftest import load_checkpoint as load
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from omiga_pl.data.formats.native import read_card, read_native
from omiga_pl.data.paths import resolve_data_path
from omiga_pl.envs.mamujoco import MaMuJoCoVecEnv
from omiga_pl.fit import main
from omiga_pl.generate.mamujoco import convert, read_raw, rollout, write_mamujoco

CONF = str(ROOT / "conf" / "mamujoco.yaml")


@pytest.fixture(scope="module")
def hopper_file(tmp_path_factory):
    """Random-policy Hopper 3x1 episodes from the real simulator, written by the generator."""
    path = tmp_path_factory.mktemp("data") / "hopper_random.h5"
    env = MaMuJoCoVecEnv("Hopper-3x1", 8)
    raw = rollout(env, None, 16, seed=0)
    card = {
        "env_family": "mamujoco",
        "scenario": "Hopper-3x1",
        "obs_mode": "reference",
        "agent_obsk": 1,
        "episode_limit": 1000,
        "quality": "random",
        "observation_version": "v5",
        "reference_returns": {"random": 10.0, "expert": 3000.0},
    }
    write_mamujoco(path, raw, card)
    return path


def test_generated_file_holds_both_modes_and_converts(hopper_file, tmp_path):
    data, card = read_native(hopper_file)
    assert data.dims.action_type == "continuous" and data.dims.obs_dim == 14 and data.states is None
    raw, _ = read_raw(hopper_file)
    assert raw.global_states.shape == (data.observations.shape[0], 11)
    assert raw.local_observations.shape == (data.observations.shape[0], 3, 9)
    local = convert(hopper_file, tmp_path / "local.h5", "local")
    assert (local["obs_mode"], local["obs_dim"], local["state_dim"]) == ("local", 9, 11)
    assert local["return_mean"] == pytest.approx(card["return_mean"])


def test_cli_run_with_evaluation(tmp_path, hopper_file):
    run_dir, stdout = fit_subprocess(tmp_path, CONF, hopper_file, steps=40, episodes=3)
    assert "[omiga_pl] done: 40 updates" in stdout
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "train/q_loss",
        "train/policy_loss",
        "eval/return_mean",
        "eval/return_std",
        "eval/normalized_score",
    } <= tags
    evals = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [20, 40]
    for e in evals:
        assert e["normalized_score"] == pytest.approx(100 * (e["return_mean"] - 10.0) / 2990.0)
    assert (
        load(run_dir / "checkpoints" / "last.ckpt")["hyper_parameters"]["dims"]["action_type"] == "continuous"
    )


def test_resume_is_bit_exact(tmp_path, hopper_file):
    common = [
        "--config",
        CONF,
        f"data.path={hopper_file}",
        "log.checkpoint_every=10",
        "trainer.max_steps=20",
        "eval.every=10",
        "eval.episodes=2",
        "log.log_every=5",
        f"log.out_dir={tmp_path / 'runs'}",
        *QUIET,
    ]
    assert main([*common, "log.run_name=straight"]) == 0
    straight = tmp_path / "runs" / "straight"
    resume = ["--resume", str(straight / "checkpoints" / "step=10.ckpt"), f"log.out_dir={tmp_path / 'runs'}"]
    assert main([*resume, "log.run_name=resumed", *QUIET]) == 0
    resumed = tmp_path / "runs" / "resumed"
    a, b = load(straight / "checkpoints" / "step=20.ckpt"), load(resumed / "checkpoints" / "step=20.ckpt")
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for index, state in a["optimizer_states"][0]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer_states"][0]["state"][index][name]), (index, name)
    last = [json.loads((d / "eval.jsonl").read_text().splitlines()[-1]) for d in (straight, resumed)]
    for e in last:
        e.pop("seconds")
    assert last[0] == last[1]


def test_obs_mode_disagreeing_with_the_card_is_one_line(tmp_path, hopper_file, capsys):
    assert main(["--config", CONF, f"data.path={hopper_file}", "env.obs_mode=local", *QUIET]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "env.obs_mode" in err[0] and "stores 'reference'" in err[0]


def test_bundled_default_dataset_matches_the_config():
    """conf/mamujoco.yaml's default file exists, is small, and fits the env it names."""
    from omegaconf import OmegaConf

    config = OmegaConf.load(CONF)
    path = resolve_data_path(config.data.path)
    assert path.exists() and path.stat().st_size <= 20 * 2**20
    card = read_card(path)
    assert (card["env_family"], card["scenario"], card["obs_mode"]) == ("mamujoco", "Hopper-3x1", "reference")
    assert set(card["reference_returns"]) == {"random", "expert"}


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "conf" / "mamujoco").glob("*.yaml")))
def test_every_task_config_loads(name):
    from omiga_pl.config import load_config

    config = load_config([CONF, ROOT / "conf" / "mamujoco" / name])
    assert config.data.path.startswith("data/mamujoco_")
    # The dataset's card names the task: a task config only picks the file.
    assert (config.env.family, config.env.scenario, config.env.obs_mode) == (None, None, None)


def test_level_selection_from_behaviour_progress():
    from omiga_pl.generate.mamujoco import pick_levels

    returns = {10: 300.0, 20: 700.0, 30: 1900.0, 40: 2700.0, 50: 1300.0}
    progress = {"checkpoints": [{"step": s, "eval_return_mean": r} for s, r in returns.items()]}
    picked = pick_levels(progress)
    assert picked["expert"]["step"] == 40  # best evaluation
    assert picked["medium"]["step"] == 20  # closest to 2700 / 3 = 900, before the expert


def test_medium_is_the_candidate_closest_to_a_third_of_the_expert():
    from omiga_pl.generate.mamujoco import choose_medium

    # Stochastic multi-episode returns per checkpoint; expert dataset mean 1000 -> target 333.
    candidates = {30: 700.0, 10: -40.0, 20: 300.0, 40: 1000.0}
    assert choose_medium(candidates, 1000.0) == 20
    assert choose_medium({20: 350.0, 10: 250.0}, 900.0) == 10  # tie (both 50 from 300): the earlier one
