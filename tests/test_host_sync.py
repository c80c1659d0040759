"""No host synchronisation inside an update that does not log (the GPU path, tested on CPU).

On an accelerator, reading a tensor's value on the host (``.item()``, ``float()``,
``.tolist()``, Python ``if`` on a tensor...) waits for every queued kernel, which is what
makes a small update launch-bound. Here every such read is made to raise inside the batch
gather and ``training_step`` of every update that does not log, for every registered
algorithm and action type. The one read allowed is Adam's step counter: torch keeps it a
CPU tensor when the parameters live on an accelerator, so reading it never waits.

A logging update reads its interval's means once, and the test checks that logged
values are interval means (and survive a resume mid-interval).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from omiga_pl.algos import ALGORITHMS, algorithm_class
from omiga_pl.algos.base import optimizer_of
from omiga_pl.algos.scalars import IntervalMeans
from omiga_pl.data.datamodule import OfflineMARLDataModule
from omiga_pl.fit import main

ROOT = Path(__file__).resolve().parent.parent
HOPPER = ROOT / "data" / "mamujoco_hopper_3x1_medium.h5"
CASES = [(name, kind) for name, cls in ALGORITHMS.items() for kind in cls.action_types]
READS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


@contextlib.contextmanager
def host_reads_raise(allowed: Callable[[torch.Tensor], bool]) -> Iterator[None]:
    """Make every tensor-to-host read raise unless ``allowed(tensor)``."""
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def guard(name: str) -> Callable:
        original = originals[name]

        def method(self: torch.Tensor, *args, **kwargs):
            if not allowed(self):
                raise AssertionError(f"host read Tensor.{name} of a {tuple(self.shape)} tensor in an update")
            return original(self, *args, **kwargs)

        return method

    try:
        for name in READS:
            setattr(torch.Tensor, name, guard(name))
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def guard_updates(module: L.LightningModule, datamodule: OfflineMARLDataModule) -> list[int]:
    """Wrap the gather and the training step of every non-logging update; returns the
    list of updates that ran guarded (filled as training goes)."""
    guarded: list[int] = []

    def is_adam_step(tensor: torch.Tensor) -> bool:
        optimizer = module.optimizers().optimizer
        return any(tensor is state.get("step") for state in optimizer.state.values())

    def logs_now() -> bool:
        return (module.global_step + 1) % module.log_every == 0

    step, gather = module.training_step, datamodule.on_after_batch_transfer

    def training_step(batch, batch_idx):
        if logs_now():
            return step(batch, batch_idx)
        with host_reads_raise(is_adam_step):
            out = step(batch, batch_idx)
        guarded.append(module.global_step)
        return out

    def on_after_batch_transfer(batch, dataloader_idx):
        if logs_now():
            return gather(batch, dataloader_idx)
        with host_reads_raise(lambda tensor: False):
            return gather(batch, dataloader_idx)

    module.training_step = training_step
    datamodule.on_after_batch_transfer = on_after_batch_transfer
    return guarded


def five_guarded_updates(
    module: L.LightningModule, datamodule: OfflineMARLDataModule, logger: Any
) -> list[int]:
    """Fit ``module`` for 5 updates with every non-logging update guarded (:func:`guard_updates`,
    ``log_every`` 3); returns the guarded updates (the global step after each)."""
    guarded = guard_updates(module, datamodule)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=5,
        max_epochs=-1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=datamodule)
    return guarded


@pytest.mark.parametrize("name,action_type", CASES)
def test_updates_that_do_not_log_never_read_the_host(tmp_path, smax_3m_file, name, action_type):
    path = smax_3m_file if action_type == "discrete" else HOPPER
    datamodule = OfflineMARLDataModule(path, batch_size=32)
    storage = datamodule.load()
    cls = algorithm_class(name)
    torch.manual_seed(0)
    module = cls(storage.dims.as_dict(), asdict(cls.config_class(hidden_sizes=[16, 16])), log_every=3)
    logger = L.pytorch.loggers.TensorBoardLogger(tmp_path, name="run", version="")
    assert five_guarded_updates(module, datamodule, logger) == [1, 2, 4, 5]  # update 3 logs


@pytest.mark.parametrize(
    "name,action_type", [("omiga", "discrete"), ("cql", "continuous"), ("bcq", "continuous")]
)
def test_ensemble_updates_that_do_not_log_never_read_the_host(tmp_path, smax_3m_file, name, action_type):
    """A 2-seed ensemble too, its members' noise drawn and replayed (CQL, BCQ) included."""
    from omiga_pl.ensemble import EnsembleDataModule, EnsembleModule, build_members

    path = smax_3m_file if action_type == "discrete" else HOPPER
    seeds = [0, 1]
    datamodule = EnsembleDataModule(path, batch_size=16, seeds=seeds)
    storage = datamodule.load()
    cls = algorithm_class(name)
    config = asdict(cls.config_class(hidden_sizes=[16, 16]))
    members = build_members(lambda seed: cls(storage.dims.as_dict(), config, log_every=3, seed=seed), seeds)
    module = EnsembleModule(members, seeds, log_every=3)
    assert five_guarded_updates(module, datamodule, logger=False) == [1, 2, 4, 5]


def test_the_guard_catches_a_host_read():
    with host_reads_raise(lambda tensor: False), pytest.raises(AssertionError, match="Tensor.item"):
        torch.ones(2).sum().item()
    with host_reads_raise(lambda tensor: False), pytest.raises(AssertionError, match="__bool__"):
        if torch.ones(()) > 0:
            pass
    assert torch.ones(()).item() == 1.0  # restored


def test_interval_means_accumulate_and_restore():
    metric = IntervalMeans(["a", "b"])
    for values in ([1.0, 10.0], [2.0, 20.0], [6.0, 0.0]):
        metric.update(torch.tensor(values))
    snapshot = metric.snapshot()
    means = metric.compute()
    assert means["a"].item() == pytest.approx(3.0) and means["b"].item() == pytest.approx(10.0)
    other = IntervalMeans(["a", "b"])
    other.restore(snapshot)
    other.update(torch.tensor([3.0, 10.0]))
    assert other.compute()["a"].item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="do not match"):
        IntervalMeans(["a"]).restore(snapshot)


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_logged_training_scalars_are_interval_means_and_resume_mid_interval(tmp_path, smax_3m_file):
    """log_every 4, a checkpoint at update 6 (mid-interval): a resumed run logs the same
    means as a straight one, and each logged loss is the mean of its 4 updates' losses."""
    common = [
        "--config",
        str(ROOT / "conf" / "smac.yaml"),
        f"data.path={smax_3m_file}",
        "trainer.max_steps=12",
        "log.log_every=4",
        "log.checkpoint_every=6",
        "eval.enabled=false",
        "threads=1",
        "trainer.enable_progress_bar=false",
        f"log.out_dir={tmp_path}",
    ]
    assert main([*common, "log.run_name=straight"]) == 0
    resume = tmp_path / "straight" / "checkpoints" / "step=6.ckpt"
    assert main([*common, "log.run_name=resumed", "--resume", str(resume)]) == 0
    straight = scalars(tmp_path / "straight", "train/q_loss")
    resumed = scalars(tmp_path / "resumed", "train/q_loss")
    assert [s for s, _ in straight] == [4, 8, 12]
    assert resumed[-1] == straight[-1] and resumed[-2] == straight[-2]

    # The mean over the interval, recomputed update by update with a plain loop.
    datamodule = OfflineMARLDataModule(smax_3m_file, batch_size=128)
    storage = datamodule.load()
    from omiga_pl.config import load_config, to_container

    config = load_config([ROOT / "conf" / "smac.yaml"], [f"data.path={smax_3m_file}"])
    torch.manual_seed(0)
    L.seed_everything(0, verbose=False)
    module = algorithm_class("omiga")(storage.dims.as_dict(), to_container(config)["algo"])
    optimizer = optimizer_of(module.configure_optimizers())
    from omiga_pl.data.datamodule import sample_indices

    losses = []
    for step in range(4):
        batch = storage.gather(sample_indices(storage.n_transitions, 128, 0, 0, step))
        out = module.compute_losses(batch)
        losses.append(out.named["q"].item())
        optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        module.clip_per_group()
        optimizer.step()
        module.update_targets()
    assert straight[0][1] == pytest.approx(float(np.mean(losses)), rel=1e-5)
    assert straight[0][1] != pytest.approx(losses[-1], rel=1e-3)


def test_compile_modes_are_checked():
    from omiga_pl.config import load_config
    from omiga_pl.errors import ConfigError

    config = load_config([ROOT / "conf" / "smac.yaml"], ["compile=reduce-overhead"])
    assert config.compile == "reduce-overhead"
    with pytest.raises(ConfigError, match="key 'compile'"):
        load_config([ROOT / "conf" / "smac.yaml"], ["compile=fast"])


@pytest.mark.slow
def test_a_compiled_update_trains_like_the_eager_one(tmp_path, smax_3m_file):
    """compile=default (inductor on CPU): the same run within rounding of the eager one."""
    common = [
        "--config",
        str(ROOT / "conf" / "smac.yaml"),
        f"data.path={smax_3m_file}",
        "trainer.max_steps=20",
        "eval.enabled=false",
        "threads=1",
        "trainer.enable_progress_bar=false",
        "algo.hidden_sizes=[32,32]",
        f"log.out_dir={tmp_path}",
    ]
    assert main([*common, "log.run_name=eager"]) == 0
    assert main([*common, "log.run_name=compiled", "compile=default"]) == 0
    eager, compiled = (
        torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=False)
        for name in ("eager", "compiled")
    )
    assert compiled["global_step"] == 20
    for key, value in eager["state_dict"].items():
        torch.testing.assert_close(compiled["state_dict"][key], value, atol=1e-4, rtol=1e-3)
