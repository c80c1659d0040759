"""Seed ensembles (omiga_pl/ensemble.py): a K-seed run is K single-seed runs, in one process.

Each member must equal the single-seed run of its seed after hundreds of updates (its
initial weights, its batch stream, its own clipping, Adam state), evaluate the same
episodes, write a run directory shaped like a single run, and resume exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from omiga_pl.config import load_config
from omiga_pl.ensemble import safe_name
from omiga_pl.errors import ConfigError
from omiga_pl.fit import main

ROOT = Path(__file__).resolve().parent.parent
SMAC, MAMUJOCO = ROOT / "conf" / "smac.yaml", ROOT / "conf" / "mamujoco.yaml"
HOPPER = ROOT / "data" / "mamujoco_hopper_3x1_medium.h5"


def fit(tmp_path: Path, config: Path, data: Path, *overrides: str, resume: Path | None = None) -> int:
    args = [
        "--config",
        str(config),
        f"data.path={data}",
        "threads=1",
        "trainer.enable_progress_bar=false",
        f"log.out_dir={tmp_path}",
        "algo.hidden_sizes=[32,32]",
        *overrides,
    ]
    return main([*args, "--resume", str(resume)] if resume else args)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def worst_difference(ensemble: dict, single: dict, index: int) -> float:
    """Largest |weight difference| between member ``index`` and a single run, and every
    Adam moment compared too (parameter order is the same in both optimizers)."""
    worst = 0.0
    for key, value in single["state_dict"].items():
        worst = max(
            worst, (ensemble["state_dict"][f"params.{safe_name(key)}"][index] - value).abs().max().item()
        )
    ens_state, one_state = ensemble["optimizer_states"][0]["state"], single["optimizer_states"][0]["state"]
    assert len(ens_state) == len(one_state)
    for slot, state in one_state.items():
        for name in ("exp_avg", "exp_avg_sq"):
            diff = (ens_state[slot][name][index] - state[name]).abs().max().item()
            worst = max(worst, diff)
    return worst


CASES = [
    ("omiga", "discrete"),
    ("bc", "discrete"),
    pytest.param("omiga_local", "discrete", marks=pytest.mark.slow),
    pytest.param("icq", "discrete", marks=pytest.mark.slow),
    pytest.param("omiga", "continuous", marks=pytest.mark.slow),
    pytest.param("bc", "continuous", marks=pytest.mark.slow),
    # Algorithms that draw training noise every update (replayed into vmap, omiga_pl/noise.py).
    ("cql", "continuous"),
    pytest.param("bcq", "continuous", marks=pytest.mark.slow),
    pytest.param("omar", "continuous", marks=pytest.mark.slow),
    pytest.param("cql", "discrete", marks=pytest.mark.slow),
    pytest.param("bcq", "discrete", marks=pytest.mark.slow),
    pytest.param("omar", "discrete", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("algo,action_type", CASES)
def test_a_k_seed_run_equals_k_single_seed_runs(tmp_path, smax_3m_file, algo, action_type):
    config, data = (SMAC, smax_3m_file) if action_type == "discrete" else (MAMUJOCO, HOPPER)
    common = [f"algo.name={algo}", "trainer.max_steps=300", "log.log_every=50", "eval.enabled=false"]
    assert fit(tmp_path, config, data, *common, "seeds=[3,1]", "log.run_name=ensemble") == 0
    ensemble = load(tmp_path / "ensemble" / "checkpoints" / "last.ckpt")
    assert ensemble["global_step"] == 300
    for index, seed in enumerate((3, 1)):
        assert fit(tmp_path, config, data, *common, f"seed={seed}", f"log.run_name=single{seed}") == 0
        single = load(tmp_path / f"single{seed}" / "checkpoints" / "last.ckpt")
        assert worst_difference(ensemble, single, index) <= 1e-5, (algo, seed)
    # The members really are different runs.
    differing = [
        key
        for key in single["state_dict"]
        if not torch.equal(*ensemble["state_dict"][f"params.{safe_name(key)}"][:2])
    ]
    assert len(differing) > len(single["state_dict"]) // 2, differing


def test_ensemble_run_directories_evaluation_and_exact_resume(tmp_path, smax_3m_file):
    common = [
        "trainer.max_steps=40",
        "log.log_every=10",
        "log.checkpoint_every=15",
        "eval.every=20",
        "eval.episodes=2",
    ]
    assert fit(tmp_path, SMAC, smax_3m_file, *common, "seeds=[0,5]", "log.run_name=straight") == 0
    run = tmp_path / "straight"
    for seed in (0, 5):
        member = run / f"seed_{seed}"
        saved = load_config([member / "config.yaml"])
        assert saved.seed == seed and saved.seeds is None
        evals = [json.loads(line) for line in (member / "eval.jsonl").read_text().splitlines()]
        assert [e["step"] for e in evals] == [20, 40]
        events = EventAccumulator(str(member))
        events.Reload()
        assert [e.step for e in events.Scalars("train/q_loss")] == [10, 20, 30, 40]
        assert [e.step for e in events.Scalars("eval/return_mean")] == [20, 40]
    # Member 5 evaluates exactly as the single run of seed 5 does.
    assert fit(tmp_path, SMAC, smax_3m_file, *common, "seed=5", "log.run_name=single5") == 0
    single = [json.loads(line) for line in (tmp_path / "single5" / "eval.jsonl").read_text().splitlines()]
    member = [json.loads(line) for line in (run / "seed_5" / "eval.jsonl").read_text().splitlines()]
    for a, b in zip(single, member):
        a.pop("seconds"), b.pop("seconds")
    assert single == member
    # Resume mid-interval (update 15, logging every 10) in a new run directory.
    resume = run / "checkpoints" / "step=15.ckpt"
    assert (
        fit(tmp_path, SMAC, smax_3m_file, *common, "seeds=[0,5]", "log.run_name=resumed", resume=resume) == 0
    )
    a, b = load(run / "checkpoints" / "last.ckpt"), load(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 40
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for slot, state in a["optimizer_states"][0]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer_states"][0]["state"][slot][name]), (slot, name)
    for seed in (0, 5):
        straight_events, resumed_events = (
            EventAccumulator(str(tmp_path / name / f"seed_{seed}")) for name in ("straight", "resumed")
        )
        straight_events.Reload(), resumed_events.Reload()
        tail = [(e.step, e.value) for e in straight_events.Scalars("train/v_loss")][-2:]
        assert [(e.step, e.value) for e in resumed_events.Scalars("train/v_loss")][-2:] == tail


@pytest.mark.parametrize(
    "override,message",
    [
        ("seeds=[]", "non-empty list"),
        ("seeds=[1,1]", "distinct seeds"),
    ],
)
def test_bad_ensemble_configs_are_one_clear_error(override, message):
    overrides = [override] if override.startswith("seeds") else [override, "seeds=[0,1]"]
    with pytest.raises(ConfigError, match=message):
        load_config([SMAC], overrides)


@pytest.mark.slow
def test_an_ensemble_that_draws_noise_resumes_exactly(tmp_path):
    """CQL on continuous data (its members' noise replayed into vmap): resuming mid-run
    draws every member's noise as the straight run did, so the weights end identical."""
    common = [
        "algo.name=cql",
        "trainer.max_steps=20",
        "log.log_every=5",
        "log.checkpoint_every=10",
        "eval.enabled=false",
        "seeds=[2,7]",
    ]
    assert fit(tmp_path, MAMUJOCO, HOPPER, *common, "log.run_name=straight") == 0
    resume = tmp_path / "straight" / "checkpoints" / "step=10.ckpt"
    assert fit(tmp_path, MAMUJOCO, HOPPER, *common, "log.run_name=resumed", resume=resume) == 0
    a, b = (load(tmp_path / name / "checkpoints" / "last.ckpt") for name in ("straight", "resumed"))
    assert a["global_step"] == b["global_step"] == 20
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
