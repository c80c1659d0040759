"""Updates/s of the Lightning fit loop against a plain-PyTorch loop of identical maths.

Covers the discrete path (SMAX 3m and 5m_vs_6m shapes, and the bundled dataset) and the
continuous one (MaMuJoCo reference-mode shapes: Hopper 3x1 N 3, O 14, A 1; Ant 2x4
N 2, O 107, A 4).

Both loops use the same dataset tensors, the same sampler, the same OmigaModule
(``compute_losses`` -> one backward -> per-group clipping -> Adam -> Polyak) and the same
thread count; only the driver differs. Runs alternate (plain, Lightning, plain, ...)
so machine noise hits both alike; the ratio of medians is printed. Also prints the
dataset's load time and resident memory against its raw float32 size.

    python benchmarks/throughput.py                       # every shape below
    python benchmarks/throughput.py --shapes Hopper-3x1 Ant-2x4 --steps 600 --threads 2
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import make_episodes  # noqa: E402

from omiga_pl.algos.omiga import OmigaModule  # noqa: E402
from omiga_pl.config import AlgoConfig  # noqa: E402
from omiga_pl.data.datamodule import OfflineMARLDataModule, sample_indices  # noqa: E402
from omiga_pl.data.formats.native import write_native  # noqa: E402

# name: (agents, obs, state or None, actions, action type). SMAX sizes; MaMuJoCo in the
# reference observation mode (no separate state: the mixer sees concatenated obs).
SHAPES = {
    "3m": (3, 75, 72, 8, "discrete"),
    "5m_vs_6m": (5, 140, 132, 11, "discrete"),
    "Hopper-3x1": (3, 14, None, 1, "continuous"),
    "Ant-2x4": (2, 107, None, 4, "continuous"),
}


def build_module(datamodule: OfflineMARLDataModule, seed: int = 0) -> OmigaModule:
    storage = datamodule.load()
    torch.manual_seed(seed)
    return OmigaModule(storage.dims.as_dict(), asdict(AlgoConfig()), log_every=10**9)


def plain_loop(datamodule: OfflineMARLDataModule, steps: int, warmup: int) -> float:
    """Updates/s of a hand-written loop (after ``warmup`` updates)."""
    module = build_module(datamodule)
    optimizer = module.configure_optimizers()
    storage = datamodule.load()
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        batch = storage.gather(sample_indices(storage.n_transitions, datamodule.batch_size, 0, 0, step))
        losses = module.compute_losses(batch)
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        module.clip_per_group()
        optimizer.step()
        module.update_targets()
    return steps / (time.perf_counter() - start)


class _Timer(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def lightning_loop(datamodule: OfflineMARLDataModule, steps: int, warmup: int, log_every: int) -> float:
    """Updates/s of ``Trainer.fit`` on the same module and data (after ``warmup`` updates)."""
    module = build_module(datamodule)
    module.log_every = log_every
    timer = _Timer(warmup)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=warmup + steps,
        max_epochs=-1,
        logger=L.pytorch.loggers.TensorBoardLogger(tempfile.mkdtemp(), name="bench"),
        callbacks=[timer],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=log_every,
    )
    trainer.fit(module, datamodule=datamodule)
    return steps / (timer.end - timer.start)


def synthetic_file(directory: Path, name: str, episodes: int) -> Path:
    """1,000 random episodes of ``name``'s shapes written as a native file."""
    n_agents, obs_dim, state_dim, n_actions, action_type = SHAPES[name]
    lengths = list(np.random.default_rng(0).integers(10, 40, size=episodes))
    if action_type == "discrete":
        data = make_episodes(lengths, n_agents, obs_dim, state_dim, n_actions)
    else:
        data = make_episodes(lengths, n_agents, obs_dim, 1, 2)
        rng = np.random.default_rng(1)
        data.states, data.avail_actions = None, None
        data.actions = rng.uniform(-1, 1, (data.n_transitions, n_agents, n_actions)).astype(np.float32)
    path = directory / f"synthetic_{name}.h5"
    write_native(path, data, {"scenario": name}, overwrite=True)
    return path


MEMORY_PROBE = """
import resource, sys, time
from omiga_pl.data.datamodule import OfflineMARLDataModule
from omiga_pl.data.formats.native import read_native
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) * 1024
data, _ = read_native(sys.argv[1])
def as32(a):
    return a.astype('float32') if a.dtype.kind == 'f' else a
raw = sum(as32(getattr(data, f)).nbytes
          for f in ('observations', 'states', 'actions', 'avail_actions', 'rewards', 'terminations',
                    'truncations', 'episode_lengths') if getattr(data, f) is not None)
del data
import gc; gc.collect()
before = rss()
start = time.perf_counter()
dm = OfflineMARLDataModule(sys.argv[1]); storage = dm.load()
seconds = time.perf_counter() - start
print(seconds, raw, rss() - before, storage.nbytes())
"""


def memory_report(path: Path) -> str:
    """Load ``path`` in a fresh process; load time and RSS growth against raw float32 bytes."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, text=True, check=True
    )
    seconds, raw, grown, held = (float(x) for x in out.stdout.split())
    return (
        f"load {seconds:.2f}s; raw float32 size {raw / 2**20:.1f} MiB; "
        f"storage tensors {held / 2**20:.1f} MiB "
        f"({held / raw:.2f}x raw); process RSS growth {grown / 2**20:.1f} MiB ({grown / raw:.2f}x raw)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="timed updates per run")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each loop")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--log-every", type=int, default=100, help="Lightning loop logs scalars this often")
    parser.add_argument("--dataset", type=Path, default=ROOT / "data" / "smax_3m_medium.h5")
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, lightning {L.__version__}, threads {args.threads}")
    with tempfile.TemporaryDirectory() as tmp:
        files = {name: synthetic_file(Path(tmp), name, episodes=1000) for name in args.shapes}
        if args.dataset.exists():
            files = {f"bundled {args.dataset.name}": args.dataset, **files}
        for name, path in files.items():
            datamodule = OfflineMARLDataModule(path, batch_size=128)
            plain, lightning = [], []
            for _ in range(args.repeats):
                gc.collect()
                plain.append(plain_loop(datamodule, args.steps, args.warmup))
                gc.collect()
                lightning.append(lightning_loop(datamodule, args.steps, args.warmup, args.log_every))
            p, lt = statistics.median(plain), statistics.median(lightning)
            print(
                f"[{name}] plain {p:.1f} upd/s, lightning {lt:.1f} upd/s -> ratio {lt / p:.3f} "
                f"(runs plain {[round(x, 1) for x in plain]}, lightning {[round(x, 1) for x in lightning]})"
            )
            print(f"[{name}] {memory_report(path)}")


if __name__ == "__main__":
    main()
