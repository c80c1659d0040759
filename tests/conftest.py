"""Shared fixtures: small synthetic datasets written by the tests themselves."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from omiga_pl.data.formats.native import EpisodeDataset, write_native

ROOT = Path(__file__).resolve().parent.parent
SMAC = str(ROOT / "conf" / "smac.yaml")
QUIET = ["trainer.enable_progress_bar=false"]

# SMAX 3m sizes, so synthetic files pass the env check.
SMAX_3M = {"n_agents": 3, "obs_dim": 75, "state_dim": 72, "n_actions": 8}


def make_episodes(
    lengths: list[int],
    n_agents: int = 3,
    obs_dim: int = 75,
    state_dim: int = 72,
    n_actions: int = 8,
    seed: int = 0,
    truncated_last: bool = False,
) -> EpisodeDataset:
    """Random but valid discrete-action episodes; the last one truncated if asked."""
    rng = np.random.default_rng(seed)
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    n_steps, n_eps = int(lengths_arr.sum()), len(lengths)
    rows = n_steps + n_eps
    avail = rng.random((rows, n_agents, n_actions)) < 0.7
    avail[..., 0] = True
    data = EpisodeDataset(
        observations=rng.standard_normal((rows, n_agents, obs_dim)).astype(np.float32),
        states=rng.standard_normal((rows, state_dim)).astype(np.float32),
        avail_actions=avail,
        actions=np.zeros((n_steps, n_agents), dtype=np.int64),
        rewards=rng.random(n_steps).astype(np.float32),
        terminations=np.zeros(n_steps, dtype=bool),
        truncations=np.zeros(n_steps, dtype=bool),
        episode_lengths=lengths_arr,
        episode_won=rng.random(n_eps) < 0.5,
    )
    transition_avail = avail[data.transition_rows()]
    scores = rng.random(transition_avail.shape) * transition_avail
    data.actions = scores.argmax(-1).astype(np.int64)
    ends = np.cumsum(lengths_arr) - 1
    data.terminations[ends] = True
    if truncated_last:
        data.terminations[ends[-1]] = False
        data.truncations[ends[-1]] = True
    return data


def source_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (to prove an import left its source untouched)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def smax_3m_file(tmp_path):
    """A 40-episode synthetic dataset with SMAX 3m dims and a card naming smax/3m."""
    path = tmp_path / "synthetic_3m.h5"
    lengths = list(np.random.default_rng(1).integers(5, 30, size=40))
    card = {"env_family": "smax", "scenario": "3m", "episode_limit": 100, "quality": "synthetic"}
    write_native(path, make_episodes(lengths, truncated_last=True), card)
    return path


def fit_in(tmp_path: Path, *overrides: str, resume: Path | None = None, config=(SMAC,)) -> int:
    """``omiga_pl.fit.main`` in this process, writing runs under ``tmp_path/runs``."""
    from omiga_pl.fit import main

    args = [a for c in config for a in ("--config", c)]
    if resume:
        args += ["--resume", str(resume)]
    return main([*args, f"log.out_dir={tmp_path / 'runs'}", *QUIET, *overrides])


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def fit_subprocess(tmp_path: Path, config: str, data: Path, steps: int, episodes: int) -> tuple[Path, str]:
    """The real command line in a subprocess: ``steps`` updates, evaluation and a
    checkpoint every ``steps // 2``; checks its exit status and checkpoint names and
    returns the run directory (``tmp_path/runs/e2e``) and the run's stdout."""
    half = steps // 2
    cmd = [
        *(sys.executable, "-m", "omiga_pl.fit", "--config", config, f"data.path={data}"),
        *(f"trainer.max_steps={steps}", f"eval.every={half}", f"eval.episodes={episodes}"),
        *("log.log_every=10", f"log.checkpoint_every={half}", "log.run_name=e2e"),
        f"log.out_dir={tmp_path / 'runs'}",
        *QUIET,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "e2e"
    names = {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert names == {"last.ckpt", f"step={half}.ckpt", f"step={steps}.ckpt"}
    return run_dir, done.stdout
