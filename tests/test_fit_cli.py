"""End-to-end runs of ``python -m omiga_pl.fit``: logs, checkpoints, exact resume, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import QUIET, ROOT, SMAC, fit_subprocess, make_episodes
from conftest import fit_in as fit
from conftest import load_checkpoint as load
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from omiga_pl.config import load_config, to_container
from omiga_pl.data.formats.native import write_native
from omiga_pl.errors import CheckpointError
from omiga_pl.fit import main
from omiga_pl.resume import check_resume_compatible


def test_cli_run_writes_scalars_checkpoints_and_config(tmp_path, smax_3m_file):
    """The real command line in a subprocess, with evaluation."""
    run_dir, stdout = fit_subprocess(tmp_path, SMAC, smax_3m_file, steps=60, episodes=4)
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "train/q_loss",
        "train/v_loss",
        "train/policy_loss",
        "train/v_mean",
        "train/mixer_w_mean",
        "train/policy_entropy",
        "perf/updates_per_s",
        "eval/return_mean",
        "eval/win_rate",
    } <= tags
    assert [e.step for e in events.Scalars("train/q_loss")] == [10, 20, 30, 40, 50, 60]
    assert [e.step for e in events.Scalars("eval/win_rate")] == [30, 60]
    evals = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [30, 60]
    checkpoint = load(run_dir / "checkpoints" / "step=60.ckpt")
    assert checkpoint["global_step"] == 60
    assert checkpoint["omiga_pl_config"]["trainer"]["max_steps"] == 60
    assert "max_steps: 60" in (run_dir / "config.yaml").read_text()
    assert "[omiga_pl] done: 60 updates" in stdout


def test_resume_is_bit_exact(tmp_path, smax_3m_file):
    common = [
        f"data.path={smax_3m_file}",
        "log.checkpoint_every=25",
        "trainer.max_steps=50",
        "eval.every=25",
        "eval.episodes=2",
        "log.log_every=5",
    ]
    assert fit(tmp_path, *common, "log.run_name=straight") == 0
    straight = tmp_path / "runs" / "straight" / "checkpoints"
    # Resume from the step-25 checkpoint (no --config: the checkpoint's config is used).
    assert fit(tmp_path, "log.run_name=resumed", resume=straight / "step=25.ckpt", config=()) == 0
    resumed = tmp_path / "runs" / "resumed" / "checkpoints"
    a, b = load(straight / "step=50.ckpt"), load(resumed / "step=50.ckpt")
    assert a["global_step"] == b["global_step"] == 50
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for index, state in a["optimizer_states"][0]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer_states"][0]["state"][index][name]), (index, name)
    straight_eval = json.loads((tmp_path / "runs" / "straight" / "eval.jsonl").read_text().splitlines()[-1])
    resumed_eval = json.loads((tmp_path / "runs" / "resumed" / "eval.jsonl").read_text().splitlines()[-1])
    straight_eval.pop("seconds"), resumed_eval.pop("seconds")
    assert straight_eval == resumed_eval


def test_resume_refuses_a_changed_algorithm(tmp_path, smax_3m_file, capsys):
    common = [f"data.path={smax_3m_file}", "trainer.max_steps=5", "eval.enabled=false", "log.run_name=r"]
    assert fit(tmp_path, *common) == 0
    last = tmp_path / "runs" / "r" / "checkpoints" / "last.ckpt"
    assert fit(tmp_path, *common, "algo.alpha=3", "trainer.max_steps=10", resume=last) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"omiga_pl.fit: error: {last}: config key 'algo.alpha' was 10.0 in the checkpoint but is "
        "3.0 now; a resumed run must train the same thing"
    ]


def test_a_resume_refusal_spells_a_null_config_value_as_null():
    """ICQ's actor_beta defaults to null (picked by action type): a resume that sets it is
    refused, and the message shows the saved value as YAML does."""
    conf = [ROOT / "conf" / "smac.yaml"]
    saved = to_container(load_config(conf, ["algo.name=icq"]))
    assert saved["algo"]["actor_beta"] is None
    now = load_config(conf, ["algo.name=icq", "algo.actor_beta=0.1"])
    with pytest.raises(CheckpointError) as caught:
        check_resume_compatible("run.ckpt", saved, now)
    assert str(caught.value) == (
        "run.ckpt: config key 'algo.actor_beta' was null in the checkpoint but is 0.1 now; "
        "a resumed run must train the same thing"
    )


def error_of(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("omiga_pl.fit: error: ")
    return lines[0]


def test_missing_dataset_is_one_line(tmp_path, capsys):
    assert fit(tmp_path, f"data.path={tmp_path / 'nope.h5'}") == 2
    assert f"{tmp_path / 'nope.h5'}: file not found" in error_of(capsys)


def test_dataset_not_matching_env_is_one_line(tmp_path, capsys):
    path = tmp_path / "wrong.h5"
    write_native(path, make_episodes([5, 5], obs_dim=70), {"env_family": "smax", "scenario": "3m"})
    assert fit(tmp_path, f"data.path={path}", "eval.enabled=false") == 2
    assert (
        "field 'observations': observation size does not match environment smax/3m: expected 75, found 70"
        in error_of(capsys)
    )


def test_config_errors_and_missing_checkpoint(tmp_path, capsys):
    assert fit(tmp_path, "algo.alpah=1") == 2
    assert "key 'algo.alpah': unknown key" in error_of(capsys)
    assert main(["--resume", str(tmp_path / "none.ckpt")]) == 2
    assert "none.ckpt: checkpoint file not found" in error_of(capsys)
    # Without --config the schema's defaults apply; a bad override still names its key.
    assert main(["trainer.max_stepz=1"]) == 2
    assert "command line: key 'trainer.max_stepz': unknown key" in error_of(capsys)


def test_fit_without_config_takes_the_env_from_the_card(tmp_path, smax_3m_file):
    """``python -m omiga_pl.fit data.path=FILE ...``: no YAML, the schema's defaults."""
    args = [f"data.path={smax_3m_file}", "trainer.max_steps=3", "eval.enabled=false", "log.run_name=bare"]
    assert main([*args, f"log.out_dir={tmp_path / 'runs'}", *QUIET]) == 0
    saved = load(tmp_path / "runs" / "bare" / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 3
    config = saved["omiga_pl_config"]
    assert (config["env"]["family"], config["env"]["scenario"]) == (None, None)  # from the card
    assert config["algo"]["hidden_sizes"] == [256, 256] and config["data"]["batch_size"] == 128


def run_cli(tmp_path, *args):
    """``python -m omiga_pl.fit ARGS`` in a subprocess (DDP re-launches sys.argv for rank 1)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "NODE_RANK")}
    cmd = [sys.executable, "-m", "omiga_pl.fit", *args, f"log.out_dir={tmp_path / 'runs'}", *QUIET]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_ddp_two_cpu_processes_and_exact_resume(tmp_path, smax_3m_file):
    ddp = ["--config", SMAC, "--config", str(ROOT / "conf/trainer/ddp.yaml")]
    common = [
        f"data.path={smax_3m_file}",
        "eval.every=10",
        "eval.episodes=2",
        "log.log_every=5",
        "log.checkpoint_every=10",
        "trainer.max_steps=20",
    ]
    done = run_cli(tmp_path, *ddp, *common, "log.run_name=ddp")
    run_dir = tmp_path / "runs" / "ddp"
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["ddp"]  # rank 1 used rank 0's run dir
    checkpoint = load(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 20
    evals = (run_dir / "eval.jsonl").read_text().splitlines()
    assert [json.loads(e)["step"] for e in evals] == [10, 20]  # rank 0 only: no duplicates
    assert done.stdout.count("[omiga_pl] done") == 1
    # Resume the 2-process run from update 10: bit-identical to the straight run at 20.
    run_cli(tmp_path, "--resume", str(run_dir / "checkpoints" / "step=10.ckpt"), "log.run_name=ddp_resumed")
    resumed = load(tmp_path / "runs" / "ddp_resumed" / "checkpoints" / "step=20.ckpt")
    for key, value in load(run_dir / "checkpoints" / "step=20.ckpt")["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_final_update_is_checkpointed_and_resume_continues_in_the_run_dir(tmp_path, smax_3m_file):
    common = [f"data.path={smax_3m_file}", "eval.enabled=false", "log.checkpoint_every=5", "log.run_name=c"]
    assert fit(tmp_path, *common, "trainer.max_steps=7") == 0
    checkpoints = tmp_path / "runs" / "c" / "checkpoints"
    assert {p.name for p in checkpoints.iterdir()} == {"last.ckpt", "step=5.ckpt", "step=7.ckpt"}
    assert load(checkpoints / "last.ckpt")["global_step"] == 7
    assert fit(tmp_path, "trainer.max_steps=12", resume=checkpoints / "last.ckpt", config=()) == 0
    assert {p.name for p in checkpoints.iterdir()} >= {"step=10.ckpt", "step=12.ckpt"}
    assert load(checkpoints / "last.ckpt")["global_step"] == 12


def test_evaluation_never_changes_training(tmp_path, smax_3m_file):
    common = [f"data.path={smax_3m_file}", "trainer.max_steps=20", "log.checkpoint_every=20"]
    assert (
        fit(tmp_path, *common, "eval.enabled=true", "eval.every=5", "eval.episodes=2", "log.run_name=e") == 0
    )
    assert fit(tmp_path, *common, "eval.enabled=false", "log.run_name=n") == 0
    with_eval = load(tmp_path / "runs" / "e" / "checkpoints" / "last.ckpt")["state_dict"]
    without = load(tmp_path / "runs" / "n" / "checkpoints" / "last.ckpt")["state_dict"]
    for key, value in with_eval.items():
        assert torch.equal(value, without[key]), key
