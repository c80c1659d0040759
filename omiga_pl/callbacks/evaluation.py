"""Online evaluation as a callback that never touches training state.

Every ``every`` updates (and once at the end) rank 0 rolls out the greedy policy in
``episodes`` parallel episodes and logs ``eval/*``. The episodes' seed is a pure
function of (seed, update index), so a resumed run evaluates on exactly the episodes a
straight run would; no torch RNG is consumed (acting is argmax), the module is put in
eval mode under ``torch.no_grad`` and restored afterwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from omiga_pl.data.datamodule import batch_seed
from omiga_pl.envs.base import VecMultiAgentEnv
from omiga_pl.evaluation import run_episodes


class EvaluationCallback(L.Callback):
    """Periodic greedy evaluation.

    Args:
        make_env: builds the vectorised env (called once, lazily, on rank 0).
        every: evaluate when ``global_step % every == 0``.
        seed: base seed of the evaluation episodes.
        reference_returns: (random, expert) returns for ``eval/normalized_score``.
        results_file: if given, every evaluation is appended to it as a JSON line.
    """

    def __init__(
        self,
        make_env: Callable[[], VecMultiAgentEnv],
        every: int,
        seed: int,
        reference_returns: tuple[float, float] | None = None,
        results_file: str | Path | None = None,
    ) -> None:
        self.make_env = make_env
        self.every = every
        self.seed = seed
        self.reference_returns = reference_returns
        self.results_file = Path(results_file) if results_file else None
        self.history: list[dict[str, float]] = []
        self._env: VecMultiAgentEnv | None = None
        self._last_step: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step % self.every == 0:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._last_step != trainer.global_step:
            self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float] | None:
        """Run one evaluation now (rank 0 only) and log it at the current step."""
        step = trainer.global_step
        self._last_step = step
        if not trainer.is_global_zero:
            return None
        if self._env is None:
            self._env = self.make_env()
        was_training = pl_module.training
        pl_module.eval()
        start = time.perf_counter()
        try:
            with torch.no_grad():
                stats = run_episodes(
                    self._env, pl_module.act, batch_seed(self.seed, 0, step, bits=31), pl_module.device
                )
        finally:
            pl_module.train(was_training)
        summary = stats.summary(self.reference_returns)
        summary["seconds"] = time.perf_counter() - start
        metrics = {f"eval/{key}": value for key, value in summary.items()}
        if trainer.logger is not None:
            trainer.logger.log_metrics(metrics, step=step)
        self.history.append({"step": step, **summary})
        if self.results_file is not None:
            with open(self.results_file, "a") as handle:
                handle.write(json.dumps({"step": step, **summary}) + "\n")
        text = ", ".join(f"{k} {v:.3f}" for k, v in summary.items() if k != "seconds")
        print(f"[eval] step {step}: {text} ({summary['seconds']:.1f}s)", flush=True)
        return summary

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "last_step": self._last_step, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = state.get("seed", self.seed)
        self._last_step = state.get("last_step")
        self.history = list(state.get("history", []))
