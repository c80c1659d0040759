"""Periodic checkpoints that also capture the final update."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class UpdateCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` every N updates, plus one when training stops in between.

    Lightning's own saves ``last.ckpt`` only at a multiple of ``every_n_train_steps``,
    so a run of 7 updates with N = 5 would leave ``last.ckpt`` at update 5 and a resume
    would silently redo two updates. Here the final state is always saved.
    """

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
        super().on_train_end(trainer, pl_module)
