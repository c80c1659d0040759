"""Checkpoints: periodic ones that also capture the final update, written atomically.

Lightning's own ``TorchCheckpointIO`` stages a checkpoint in the system temp directory
and moves it; when the run directory is on another file system the move is a copy, and
a full disk leaves ``last.ckpt`` truncated with the previous resume point gone.
:class:`AtomicCheckpointIO` writes into the destination's own directory instead,
fsyncs, then renames, so a checkpoint file is always either the old one or the new one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from omiga_pl.errors import OutputError, os_reason
from omiga_pl.io import fsync_directory, temporary_name


class CheckpointWriteError(OutputError):
    """A checkpoint could not be written (disk full, permission); the previous one is intact."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file next to the destination, flush, fsync, ``os.replace``.

    A failed write removes the temporary file, leaves any previous file of that name
    (``last.ckpt``) untouched and raises one :class:`CheckpointWriteError` naming the path.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        tmp = temporary_name(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as error:
            kept = (
                "the previous checkpoint of that name is intact" if path.exists() else "nothing was written"
            )
            raise CheckpointWriteError(
                f"{path}: cannot write checkpoint: {os_reason(error)}; {kept}"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        fsync_directory(path.parent)


class UpdateCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` every N updates, plus one when training stops in between.

    Lightning's own saves ``last.ckpt`` only at a multiple of ``every_n_train_steps``,
    so a run of 7 updates with N = 5 would leave ``last.ckpt`` at update 5 and a resume
    would silently redo two updates. Here the final state is always saved. File names
    never get a version suffix (``last-v1.ckpt``): a run owns its directory (fit refuses
    to start in another run's), so a name that exists is this run's and is replaced.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("enable_version_counter", False)
        super().__init__(*args, **kwargs)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
        super().on_train_end(trainer, pl_module)
