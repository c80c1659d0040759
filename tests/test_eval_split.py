"""Evaluation split over DDP ranks: chunking, torchmetrics gathering, and a 2-process run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from omiga_pl.callbacks.evaluation import periodic_seed
from omiga_pl.envs import make_env
from omiga_pl.evaluation import EpisodeMetrics, rank_chunks, run_episodes, slots_per_rank
from omiga_pl.rollout import EpisodeStats

ROOT = Path(__file__).resolve().parent.parent


def test_chunking_covers_every_episode_once():
    assert slots_per_rank(32, 1) == 32 and slots_per_rank(32, 2) == 16 and slots_per_rank(5, 2) == 3
    for n_chunks, world in [(1, 1), (1, 2), (2, 2), (5, 2), (10, 3)]:
        shares = [rank_chunks(n_chunks, r, world) for r in range(world)]
        assert sorted(c for share in shares for c in share) == list(range(n_chunks))
    assert rank_chunks(1, 1, 2) == []  # a rank may have nothing to run (it still syncs)


def _stats(returns, won=None):
    returns = np.asarray(returns, dtype=np.float64)
    return EpisodeStats(returns=returns, lengths=np.arange(1, returns.size + 1), won=won)


def test_metric_orders_episodes_by_chunk_and_slot():
    metric = EpisodeMetrics(has_win_signal=True)
    metric.update(_stats([5.0, 6.0], np.array([True, False])), chunk=1, width=3)
    metric.update(_stats([1.0, 2.0, 3.0], np.array([False, True, True])), chunk=0, width=3)
    metric.empty()
    out = metric.compute()
    np.testing.assert_array_equal(out.returns, [1, 2, 3, 5, 6])
    np.testing.assert_array_equal(out.lengths, [1, 2, 3, 1, 2])
    np.testing.assert_array_equal(out.won, [False, True, True, True, False])
    assert out.summary()["return_mean"] == pytest.approx(3.4)
    metric.reset()
    metric.empty()
    assert metric.compute().returns.size == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    metric = EpisodeMetrics(has_win_signal=False)
    # 5 chunks of width 2 round-robin: rank 0 runs 0, 2, 4 (the last one 1 slot), rank 1 runs 1, 3.
    for chunk in rank_chunks(5, rank, 2):
        n = 1 if chunk == 4 else 2
        metric.update(_stats([10.0 * chunk + j for j in range(n)]), chunk=chunk, width=2)
    result = metric.compute()
    torch.save({"returns": result.returns, "lengths": result.lengths}, f"{out}.{rank}")
    dist.destroy_process_group()


def test_two_gloo_processes_gather_the_same_ordered_episodes(tmp_path):
    mp.spawn(_gather_worker, args=(_free_port(), str(tmp_path / "r")), nprocs=2, join=True)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"r.{rank}", weights_only=False)
        np.testing.assert_array_equal(got["returns"], [0, 1, 10, 11, 20, 21, 30, 31, 40])


def _run_fit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "NODE_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "omiga_pl.fit", *args, f"log.out_dir={tmp_path / 'runs'}"]
    cmd += ["trainer.enable_progress_bar=false", "threads=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_two_process_ddp_evaluation_splits_episodes_and_matches_one_process_replay(tmp_path):
    """2 gloo ranks each run half of the episodes; the gathered record equals the chunks
    replayed in one process with the checkpointed policy; a resume writes the same records."""
    common = [
        "--config",
        str(ROOT / "conf" / "mpe.yaml"),
        "--config",
        str(ROOT / "conf" / "trainer" / "ddp.yaml"),
        f"data.path={ROOT / 'data' / 'mpe_simple_spread_medium.h5'}",
        "eval.every=4",
        "eval.episodes=6",
        "eval.final_episodes=15",
        "trainer.max_steps=8",
        "log.checkpoint_every=4",
        "log.log_every=4",
    ]
    done = _run_fit(tmp_path, *common, "log.run_name=ddp")
    run = tmp_path / "runs" / "ddp"
    records = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [4, 8]  # written once (rank 0)
    assert done.stdout.count("[eval] step 8") == 1
    final = json.loads((run / "final_eval.json").read_text())
    assert final["episodes"] == 15 and final["processes"] == 2 and len(final["seeds"]) == 5  # width 3
    last = records[-1]
    assert last["processes"] == 2 and last["episodes"] == 6 and len(last["seeds"]) == 2
    seed = 0 + 10_000  # config seed + eval.seed_offset
    assert last["seeds"] == [periodic_seed(seed, 8, 0), periodic_seed(seed, 8, 1)]
    # Replay both chunks (width 3) in this process with the step-8 policy: the gathered
    # record is exactly chunk 0 then chunk 1.
    from omiga_pl.algos import algorithm_class

    checkpoint = torch.load(run / "checkpoints" / "step=8.ckpt", weights_only=False, map_location="cpu")
    config = checkpoint["omiga_pl_config"]
    data_dims = {"n_agents": 3, "obs_dim": 18, "state_dim": 54, "action_type": "discrete", "action_dim": 5}
    module = algorithm_class(config["algo"]["name"])(dims=data_dims, algo=config["algo"], log_every=4, seed=0)
    module.load_state_dict(checkpoint["state_dict"])
    module.eval()
    env = make_env("pettingzoo", "mpe2.simple_spread_v3", num_envs=3)
    with torch.no_grad():
        replay = [run_episodes(env, module.act, s).returns for s in last["seeds"]]
    np.testing.assert_allclose(last["returns"], np.concatenate(replay), rtol=1e-12)
    # Resume the 2-process run from update 4: the same records as the straight run.
    _run_fit(tmp_path, "--resume", str(run / "checkpoints" / "step=4.ckpt"), "log.run_name=ddp_resumed")
    resumed = [
        json.loads(x) for x in (tmp_path / "runs" / "ddp_resumed" / "eval.jsonl").read_text().splitlines()
    ]
    assert [r["returns"] for r in resumed] == [r["returns"] for r in records]
    assert (
        json.loads((tmp_path / "runs" / "ddp_resumed" / "final_eval.json").read_text())["returns"]
        == final["returns"]
    )
