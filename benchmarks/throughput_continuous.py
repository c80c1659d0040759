"""Continuous OMIGA update throughput: Lightning vs a plain PyTorch loop, as a ratio.

Shapes: MaMuJoCo reference observation mode, batch 128, hidden [256, 256]:
Hopper 3x1 (N 3, O 14, S 42, A 1) and Ant 2x4 (N 2, O 107, S 214, A 4). Both loops use
the same OmigaModule maths and the same resumable sampler on a synthetic in-memory
dataset; the plain loop replicates training_step without a Trainer.

    nice -n 10 python benchmarks/throughput_continuous.py --steps 300 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch

from omiga_pl.algos.omiga import OmigaModule
from omiga_pl.config import AlgoConfig
from omiga_pl.data.datamodule import OfflineMARLDataModule, sample_indices
from omiga_pl.data.formats.native import EpisodeDataset, write_native

SHAPES = {"Hopper-3x1": (3, 14, 1), "Ant-2x4": (2, 107, 4)}


def synthetic(
    n_agents: int, obs_dim: int, act_dim: int, episodes: int = 20, length: int = 500
) -> EpisodeDataset:
    rng = np.random.default_rng(0)
    rows = episodes * (length + 1)
    steps = episodes * length
    truncations = np.zeros(steps, dtype=bool)
    truncations[np.arange(1, episodes + 1) * length - 1] = True
    return EpisodeDataset(
        observations=rng.standard_normal((rows, n_agents, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, (steps, n_agents, act_dim)).astype(np.float32),
        rewards=rng.random(steps).astype(np.float32),
        terminations=np.zeros(steps, dtype=bool),
        truncations=truncations,
        episode_lengths=np.full(episodes, length, dtype=np.int64),
    )


def make_module(data: EpisodeDataset) -> OmigaModule:
    dims = dict(
        n_agents=data.n_agents,
        obs_dim=data.obs_dim,
        state_dim=data.state_dim,
        action_type="continuous",
        action_dim=data.action_dim,
    )
    return OmigaModule(dims, asdict(AlgoConfig()), log_every=10**9)


def plain(path: Path, steps: int, batch: int) -> float:
    dm = OfflineMARLDataModule(path, batch_size=batch)
    storage = dm.load()
    module = make_module(read(path))
    optimizer = module.configure_optimizers()
    for warm in (True, False):
        start = time.perf_counter()
        for step in range(10 if warm else steps):
            b = storage.gather(sample_indices(storage.n_transitions, batch, 0, 0, step))
            losses = module.compute_losses(b)
            optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
            module.clip_per_group()
            optimizer.step()
            module.update_targets()
    return steps / (time.perf_counter() - start)


def lightning(path: Path, steps: int, batch: int) -> float:
    module = make_module(read(path))
    dm = OfflineMARLDataModule(path, batch_size=batch)
    times = {}

    class Clock(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 10:
                times["start"] = time.perf_counter()

    trainer = L.Trainer(
        max_steps=steps + 10,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Clock()],
        num_sanity_val_steps=0,
        limit_val_batches=0,
        max_epochs=-1,
    )
    trainer.fit(module, datamodule=dm)
    return steps / (time.perf_counter() - times["start"])


def read(path: Path) -> EpisodeDataset:
    from omiga_pl.data.formats.native import read_native

    return read_native(path)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for task, (n, obs, act) in SHAPES.items():
            path = Path(tmp) / f"{task}.h5"
            write_native(path, synthetic(n, obs, act), {"env_family": "mamujoco", "scenario": task})
            torch.manual_seed(0)
            p = plain(path, args.steps, args.batch)
            torch.manual_seed(0)
            lt = lightning(path, args.steps, args.batch)
            print(
                f"{task}: plain {p:.1f} updates/s, lightning {lt:.1f} updates/s, ratio lightning/plain "
                f"{lt / p:.3f} (B {args.batch}, N {n}, O {obs}, A {act}, threads {args.threads})",
                flush=True,
            )


if __name__ == "__main__":
    main()
