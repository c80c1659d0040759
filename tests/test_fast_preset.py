"""``conf/presets/fast.yaml`` (the update compiled by torch.compile, fused Adam): a run under
it trains like the default eager run (within rounding), resumes bit for bit, and keeps
the preset's keys in its checkpoint, on a discrete (SMAX) and a continuous (MaMuJoCo)
dataset. Speed is measured in ``benchmarks/single_run.py --fast``, not here."""

from __future__ import annotations

import pytest
import torch
from conftest import QUIET, ROOT
from conftest import load_checkpoint as load

from omiga_pl.config import load_config
from omiga_pl.fit import main

FAST = ROOT / "conf" / "presets" / "fast.yaml"
HOPPER = ROOT / "data" / "mamujoco_hopper_3x1_medium.h5"


def test_the_preset_sets_compile_and_fused_adam_only():
    base = load_config([ROOT / "conf" / "smac.yaml"])
    fast = load_config([ROOT / "conf" / "smac.yaml", FAST])
    assert (fast.compile, fast.algo.adam_impl) == ("default", "fused")
    assert (base.compile, base.algo.adam_impl) == (None, "foreach")
    fast.compile, fast.algo.adam_impl = base.compile, base.algo.adam_impl
    assert fast == base  # nothing else changes


@pytest.fixture(params=["smax", "hopper"])
def task(request, smax_3m_file):
    if request.param == "smax":
        return ["--config", str(ROOT / "conf" / "smac.yaml"), f"data.path={smax_3m_file}"]
    return ["--config", str(ROOT / "conf" / "mamujoco.yaml"), f"data.path={HOPPER}"]


@pytest.mark.slow
def test_a_fast_run_trains_like_the_default_and_resumes_exactly(tmp_path, task):
    common = [
        *task,
        "trainer.max_steps=12",
        "log.checkpoint_every=6",
        "log.log_every=3",
        "eval.enabled=false",
        "threads=1",
        "algo.hidden_sizes=[32,32]",
        f"log.out_dir={tmp_path}",
        *QUIET,
    ]
    fast = ["--config", str(FAST)]
    assert main([*common, "log.run_name=eager"]) == 0
    assert main([*common, *fast, "log.run_name=fast"]) == 0
    straight = tmp_path / "fast" / "checkpoints"
    assert (
        main(["--resume", str(straight / "step=6.ckpt"), f"log.out_dir={tmp_path}", "log.run_name=resumed"])
        == 0
    )
    eager, a, b = (
        load(tmp_path / name / "checkpoints" / "step=12.ckpt") for name in ("eager", "fast", "resumed")
    )
    assert a["omiga_pl_config"]["compile"] == b["omiga_pl_config"]["compile"] == "default"
    assert a["omiga_pl_config"]["algo"]["adam_impl"] == "fused"
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key  # resume: bit for bit
        torch.testing.assert_close(value, eager["state_dict"][key], atol=1e-4, rtol=1e-3)
    for index, state in a["optimizer_states"][0]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer_states"][0]["state"][index][name]), (index, name)
