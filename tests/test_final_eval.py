"""The final (absolute_metrics) evaluation: episode count, disjoint seeds, per-episode
records, exact resume, and completion after a kill during the final evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SMAC
from conftest import fit_in as fit

from omiga_pl.callbacks.evaluation import SEED_HALF, final_seed, periodic_seed
from omiga_pl.config import final_episodes, load_config
from omiga_pl.errors import ConfigError


def records(run_dir: Path) -> tuple[list[dict], dict]:
    periodic = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    final = json.loads((run_dir / "final_eval.json").read_text())
    for record in [*periodic, final]:
        record.pop("seconds")
    return periodic, final


def test_final_episodes_default_is_ten_times_the_periodic_count():
    assert final_episodes(load_config([SMAC])) == 320
    assert final_episodes(load_config([str(ROOT / "conf" / "mamujoco.yaml")])) == 100
    assert final_episodes(load_config([SMAC], ["eval.episodes=3"])) == 30
    assert final_episodes(load_config([SMAC], ["eval.final_episodes=7"])) == 7
    assert final_episodes(load_config([SMAC], ["eval.final_episodes=0"])) == 0
    with pytest.raises(ConfigError, match="eval.final_episodes.*found -1 .set on the command line"):
        load_config([SMAC], ["eval.final_episodes=-1"])


def test_final_seeds_are_disjoint_from_periodic_seeds():
    """Periodic reset seeds lie in [0, 2**31), final ones in [2**31, 2**32): disjoint for
    every (seed, step, chunk), and within range for SMAX (jax keys take 32 bits)."""
    for seed in (0, 1, 10_000, 2**32 - 1):
        for step in (0, 1, 2000, 10**6):
            assert 0 <= periodic_seed(seed, step) < SEED_HALF
            for chunk in range(3):
                assert SEED_HALF <= final_seed(seed, step, chunk) < 2**32
    # Chunks of one final evaluation differ from each other.
    assert len({final_seed(7, 100, chunk) for chunk in range(50)}) == 50


def test_final_evaluation_records_every_episode(tmp_path, smax_3m_file):
    common = [f"data.path={smax_3m_file}", "trainer.max_steps=20", "eval.every=10", "log.run_name=f"]
    # 10 episodes in chunks of 4 slots: 4 + 4 + 2.
    assert fit(tmp_path, *common, "eval.episodes=4", "eval.final_episodes=10") == 0
    periodic, final = records(tmp_path / "runs" / "f")
    assert [r["step"] for r in periodic] == [10, 20]
    assert final["step"] == 20 and final["kind"] == "absolute_metrics"
    assert final["episodes"] == len(final["returns"]) == len(final["lengths"]) == len(final["won"]) == 10
    assert len(final["seeds"]) == 3
    assert final["return_mean"] == pytest.approx(np.mean(final["returns"]))
    assert final["win_rate"] == pytest.approx(np.mean(final["won"]))
    assert final["episode_length_mean"] == pytest.approx(np.mean(final["lengths"]))
    assert all(1 <= n <= 100 for n in final["lengths"])
    for record in periodic:
        assert record["episodes"] == len(record["returns"]) == len(record["won"]) == 4
        assert record["return_mean"] == pytest.approx(np.mean(record["returns"]))
    # The seeds the run really used: no final reset seed is a periodic one; the env
    # derives each slot's episode from its reset seed, so no final episode repeats one.
    used = {s for r in periodic for s in r["seeds"]}
    assert used.isdisjoint(final["seeds"])
    assert [r["seeds"] for r in periodic] == [[periodic_seed(10_000, 10)], [periodic_seed(10_000, 20)]]
    assert final["seeds"] == [final_seed(10_000, 20, k) for k in range(3)]
    # The default: 10 x the periodic count.
    assert fit(tmp_path, *common[:-1], "eval.episodes=2", "log.run_name=d") == 0
    assert records(tmp_path / "runs" / "d")[1]["episodes"] == 20
    # Off: no file.
    assert fit(tmp_path, *common[:-1], "eval.episodes=2", "eval.final_episodes=0", "log.run_name=o") == 0
    assert not (tmp_path / "runs" / "o" / "final_eval.json").exists()


def test_resumed_run_writes_the_same_records(tmp_path, smax_3m_file):
    common = [
        f"data.path={smax_3m_file}",
        "trainer.max_steps=30",
        "eval.every=10",
        "eval.episodes=2",
        "eval.final_episodes=6",
        "log.checkpoint_every=15",
    ]
    assert fit(tmp_path, *common, "log.run_name=straight") == 0
    straight = tmp_path / "runs" / "straight"
    # Into another run directory from the middle ...
    middle = straight / "checkpoints" / "step=15.ckpt"
    assert fit(tmp_path, "log.run_name=resumed", resume=middle, config=()) == 0
    assert records(tmp_path / "runs" / "resumed") == records(straight)
    # ... and in its own directory, whose eval.jsonl holds records past the checkpoint
    # (an interrupted run evaluated at 20 and 30 after saving at 15): nothing twice.
    own = tmp_path / "runs" / "own"
    assert fit(tmp_path, *common, "log.run_name=own") == 0
    (own / "final_eval.json").unlink()
    assert fit(tmp_path, *common, "log.run_name=own", resume=own / "checkpoints" / "step=15.ckpt") == 0
    assert records(own) == records(straight)


def test_a_kill_during_the_final_evaluation_is_finished_on_resume(tmp_path, smax_3m_file):
    """last.ckpt at max_steps, no final_eval.json (killed while evaluating): resuming
    trains nothing and writes the final record a straight run writes."""
    common = [
        f"data.path={smax_3m_file}",
        "trainer.max_steps=20",
        "eval.every=10",
        "eval.episodes=2",
        "eval.final_episodes=4",
        "log.checkpoint_every=10",
        "log.run_name=k",
    ]
    assert fit(tmp_path, *common) == 0
    run_dir = tmp_path / "runs" / "k"
    expected = records(run_dir)
    saved = shutil.copy(run_dir / "checkpoints" / "last.ckpt", tmp_path / "last.ckpt")
    (run_dir / "final_eval.json").unlink()
    assert fit(tmp_path, *common, resume=run_dir / "checkpoints" / "last.ckpt") == 0
    assert records(run_dir) == expected
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == Path(saved).read_bytes()
