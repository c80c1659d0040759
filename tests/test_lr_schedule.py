"""``algo.policy_lr_schedule``: the policy group's learning rate over a run, and exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import fit_in, load_checkpoint

from omiga_pl.algos.base import CosineFactor, policy_lr_schedule, resolve_lr_schedule
from omiga_pl.config import load_config
from omiga_pl.errors import ConfigError
from omiga_pl.fit import main

ROOT = Path(__file__).resolve().parent.parent
HOPPER = ROOT / "data" / "mamujoco_hopper_3x1_medium.h5"


def test_cosine_factor_by_hand():
    factor = CosineFactor(8)
    assert factor(0) == 1.0
    assert factor(2) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))  # 0.853553
    assert factor(4) == pytest.approx(0.5)
    assert factor(8) == pytest.approx(0.0, abs=1e-12)
    assert factor(11) == pytest.approx(0.0, abs=1e-12)  # past the end: stays at 0


def test_only_the_policy_group_decays():
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
    groups = [{"params": [p], "lr": 1e-3, "name": n} for p, n in zip(params, ("q", "v", "policy"))]
    optimizer = torch.optim.Adam(groups)
    assert policy_lr_schedule(optimizer, "constant", 10) is None
    schedule = policy_lr_schedule(optimizer, "cosine", 10)
    for _ in range(5):
        optimizer.step()
        schedule.step()
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["q"] == lrs["v"] == 1e-3
    assert lrs["policy"] == pytest.approx(0.5e-3)
    with pytest.raises(ConfigError, match="algo.policy_lr_schedule.*trainer.max_steps.*found 0"):
        policy_lr_schedule(optimizer, "cosine", 0)


def test_an_unknown_schedule_is_refused_naming_the_key():
    with pytest.raises(
        ConfigError, match=r"algo.policy_lr_schedule': expected one of \['auto', 'constant', 'cosine'\]"
    ):
        load_config([ROOT / "conf" / "mamujoco.yaml"], ["algo.policy_lr_schedule=linear"])


def test_auto_is_cosine_for_continuous_actions_and_constant_for_discrete():
    assert resolve_lr_schedule("auto", "continuous") == "cosine"
    assert resolve_lr_schedule("auto", "discrete") == "constant"
    assert resolve_lr_schedule("constant", "continuous") == "constant"  # explicit values stand
    assert resolve_lr_schedule("cosine", "discrete") == "cosine"


def test_a_discrete_run_keeps_a_constant_policy_rate_by_default(tmp_path, smax_3m_file):
    overrides = [f"data.path={smax_3m_file}", "algo.hidden_sizes=[16]", "data.batch_size=16"]
    overrides += ["trainer.max_steps=4", "eval.enabled=false", "log.run_name=smax"]
    assert fit_in(tmp_path, *overrides) == 0
    saved = load_checkpoint(tmp_path / "runs" / "smax" / "checkpoints" / "last.ckpt")
    assert saved["omiga_pl_config"]["algo"]["policy_lr_schedule"] == "auto"
    assert saved["lr_schedulers"] == []
    assert {g["lr"] for g in saved["optimizer_states"][0]["param_groups"]} == {5e-4}


# The continuous default ("auto") is the cosine: the omiga case runs it without naming it.
@pytest.mark.parametrize(("name", "schedule"), [("omiga", "auto"), ("bc", "cosine")])
def test_a_cosine_run_resumes_exactly(tmp_path, name, schedule):
    common = [
        f"log.out_dir={tmp_path / 'runs'}",
        "trainer.enable_progress_bar=false",
    ]
    config = [
        "--config",
        str(ROOT / "conf" / "mamujoco.yaml"),
        f"algo.name={name}",
        "algo.hidden_sizes=[32,32]",
        f"algo.policy_lr_schedule={schedule}",
        f"data.path={HOPPER}",
        "data.batch_size=32",
        "env.episode_limit=20",
        "trainer.max_steps=8",
        "eval.every=8",
        "eval.episodes=1",
        "eval.final_episodes=0",
        "log.log_every=2",
        "log.checkpoint_every=4",
    ]
    assert main([*config, *common, "log.run_name=straight"]) == 0
    ckpts = tmp_path / "runs" / "straight" / "checkpoints"
    assert main(["--resume", str(ckpts / "step=4.ckpt"), *common, "log.run_name=resumed"]) == 0
    half = torch.load(ckpts / "step=4.ckpt", map_location="cpu", weights_only=False)
    lrs = {g["name"]: g["lr"] for g in half["optimizer_states"][0]["param_groups"]}
    assert lrs.pop("policy") == pytest.approx(5e-4 * 0.5)  # half way through a cosine over 8 updates
    assert all(lr == 5e-4 for lr in lrs.values())
    a = torch.load(ckpts / "step=8.ckpt", map_location="cpu", weights_only=False)
    b = torch.load(
        tmp_path / "runs" / "resumed" / "checkpoints" / "step=8.ckpt", map_location="cpu", weights_only=False
    )
    assert a["lr_schedulers"] == b["lr_schedulers"] and a["lr_schedulers"][0]["last_epoch"] == 8
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
