"""Pieces the benchmark scripts share: building an algorithm on a dataset, timing the
Lightning fit loop and a plain loop of the same maths, and a line about the machine.

Run the scripts alone: two cores are shared by everything on these machines, and any
other process running beside a benchmark turns its numbers into noise.
"""

from __future__ import annotations

import logging
import platform
import tempfile
import time
from dataclasses import asdict

import lightning as L
import torch

from omiga_pl.algos import algorithm_class
from omiga_pl.algos.base import OfflineAlgorithm, optimizer_of
from omiga_pl.data.datamodule import OfflineMARLDataModule, sample_indices

# Lightning's per-Trainer banners (GPU available, tips) would bury the figures.
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def machine_summary() -> str:
    """CPU model, the SIMD/matrix flags that decide fp32 vs bf16 speed, torch and threads."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    present = [flag for flag in wanted if flag in flags] or ["none of " + ", ".join(wanted)]
    return (
        f"{model}; flags: {' '.join(present)}; torch {torch.__version__}, lightning {L.__version__}, "
        f"threads {torch.get_num_threads()}"
    )


def build_module(
    datamodule: OfflineMARLDataModule, name: str = "omiga", seed: int = 0, **algo: object
) -> OfflineAlgorithm:
    """Algorithm ``name`` with its default config (updated by ``algo``), sized for the data."""
    storage = datamodule.load()
    torch.manual_seed(seed)
    cls = algorithm_class(name)
    config = asdict(cls.config_class(**algo))
    return cls(storage.dims.as_dict(), config, log_every=10**9)


def plain_loop(module: OfflineAlgorithm, datamodule: OfflineMARLDataModule, steps: int, warmup: int) -> float:
    """Updates/s of a hand-written loop of the module's update (after ``warmup`` updates)."""
    optimizer = optimizer_of(module.configure_optimizers())
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
        stamp = trainer.global_step == self.warmup or trainer.global_step == trainer.max_steps
        if stamp and torch.cuda.is_available() and trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()  # queued kernels belong to the updates before the stamp
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def lightning_loop(
    module: OfflineAlgorithm,
    datamodule: OfflineMARLDataModule,
    steps: int,
    warmup: int,
    log_every: int = 100,
    precision: str = "32-true",
    compile_mode: str | None = None,
    accelerator: str = "cpu",
) -> float:
    """Updates/s of ``Trainer.fit`` on ``module`` and the data (after ``warmup`` updates;
    compilation happens within them). ``compile_mode``: what ``compile=`` does in
    ``omiga_pl.fit``, ``torch.compile`` of the update's forward and backward."""
    module.log_every = log_every
    if compile_mode:
        module.compute_losses = torch.compile(module.compute_losses, mode=compile_mode)
    timer = _Timer(warmup)
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        max_steps=warmup + steps,
        max_epochs=-1,
        precision=precision,
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
