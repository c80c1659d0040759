"""Online evaluation as a callback that never touches training state.

Two kinds of evaluation, both greedy (acting is argmax / the deterministic action):

* **periodic**: every ``every`` updates (and once at the end) rank 0 rolls out
  ``episodes`` parallel episodes and logs ``eval/*``; records go to ``eval.jsonl``.
* **final** (the field's ``absolute_metrics``): once training has reached
  ``trainer.max_steps``, ``final_episodes`` episodes (default 10x ``episodes``) are run
  in chunks of ``episodes`` slots on the same vectorised env, logged as ``final/*`` and
  written to ``final_eval.json``.

Seeds: a periodic evaluation at update ``t`` resets its env with
:func:`periodic_seed` in ``[0, 2**31)``; chunk ``k`` of the final one with
:func:`final_seed` in ``[2**31, 2**32)``, so no final episode is reset from a seed a
training-time evaluation used (disjoint by construction). Both are pure functions of
(seed, update[, chunk]), so a resumed run evaluates on exactly the episodes a straight
run would. No torch RNG is consumed; the module is put in eval mode under
``torch.no_grad`` and restored afterwards.

Records keep every episode's return, length and win flag (``returns``, ``lengths``,
``won``), so results can be re-aggregated (rliable, marl-eval) without re-running.
Both files are rewritten atomically from the callback's state (which is in every
checkpoint), so after a resume they hold exactly what a straight run's would.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from omiga_pl.data.datamodule import batch_seed
from omiga_pl.envs.base import VecMultiAgentEnv
from omiga_pl.evaluation import run_episodes
from omiga_pl.io import atomic_output
from omiga_pl.rollout import EpisodeStats

__all__ = ["EVAL_FILE", "FINAL_FILE", "EvaluationCallback", "final_seed", "periodic_seed"]

EVAL_FILE = "eval.jsonl"
FINAL_FILE = "final_eval.json"
SEED_HALF = 2**31  # periodic seeds below, final seeds at or above
FINAL_STREAM = 1  # batch_seed stream of the final evaluation's chunks


def periodic_seed(seed: int, step: int) -> int:
    """Reset seed of the periodic evaluation at update ``step``: in ``[0, 2**31)``."""
    return batch_seed(seed, 0, step, bits=31)


def final_seed(seed: int, step: int, chunk: int) -> int:
    """Reset seed of chunk ``chunk`` of the final evaluation at ``step``: in ``[2**31, 2**32)``."""
    return SEED_HALF + batch_seed(seed, chunk, step, bits=31, stream=FINAL_STREAM)


def episode_record(
    stats: EpisodeStats, reference_returns: tuple[float, float] | None, seeds: list[int]
) -> dict[str, Any]:
    """Summary (means, win rate, normalised score) plus every episode's values.

    Returns a JSON-ready dict: the summary keys of :meth:`EpisodeStats.summary`,
    ``episodes``, ``seeds`` (the env reset seeds), ``returns`` [E] / ``lengths`` [E] /
    ``won`` [E] (absent without a win signal), ``reference_returns`` (or absent).
    """
    record: dict[str, Any] = dict(stats.summary(reference_returns))
    record["episodes"] = int(stats.returns.shape[0])
    record["seeds"] = [int(s) for s in seeds]
    record["returns"] = [float(r) for r in stats.returns]
    record["lengths"] = [int(n) for n in stats.lengths]
    if stats.won is not None:
        record["won"] = [bool(w) for w in stats.won]
    if reference_returns is not None:
        record["reference_returns"] = [float(v) for v in reference_returns]
    return record


def concat_stats(parts: list[EpisodeStats]) -> EpisodeStats:
    """Episodes of several rollouts back to back (no trajectories)."""
    won = None if parts[0].won is None else np.concatenate([p.won for p in parts])  # type: ignore[misc]
    return EpisodeStats(
        returns=np.concatenate([p.returns for p in parts]),
        lengths=np.concatenate([p.lengths for p in parts]),
        won=won,
    )


def _scalars(record: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in record.items() if isinstance(v, float)}


class EvaluationCallback(L.Callback):
    """Periodic greedy evaluation and the final (``absolute_metrics``) one.

    Args:
        make_env: builds the vectorised env with ``episodes`` slots (called once, lazily,
            on rank 0).
        every: evaluate when ``global_step % every == 0``.
        seed: base seed of the evaluation episodes.
        reference_returns: (random, expert) returns for ``eval/normalized_score``.
        results_file: if given, the periodic records are written there as JSON lines.
        final_episodes: episodes of the final evaluation (0: none). It runs in chunks of
            the env's slots, the last chunk counting only its first slots.
        final_file: where the final record is written (JSON).
    """

    def __init__(
        self,
        make_env: Callable[[], VecMultiAgentEnv],
        every: int,
        seed: int,
        reference_returns: tuple[float, float] | None = None,
        results_file: str | Path | None = None,
        final_episodes: int = 0,
        final_file: str | Path | None = None,
    ) -> None:
        self.make_env = make_env
        self.every = every
        self.seed = seed
        self.reference_returns = reference_returns
        self.results_file = Path(results_file) if results_file else None
        self.final_episodes = final_episodes
        self.final_file = Path(final_file) if final_file else None
        self.history: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self._env: VecMultiAgentEnv | None = None
        self._last_step: int | None = None

    # -- hooks ------------------------------------------------------------------------

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step % self.every == 0:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._last_step != trainer.global_step:
            self.evaluate(trainer, pl_module)
        if self._final_due(trainer):
            self.evaluate_final(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Resuming a checkpoint of a finished run skips the training loop (no
        # on_train_end): a run killed during its final evaluation finishes it here.
        if self._final_due(trainer):
            self.evaluate_final(trainer, pl_module, log=False)
        if trainer.is_global_zero:
            self._write_records()

    def _final_due(self, trainer: L.Trainer) -> bool:
        limit = trainer.max_steps
        finished = limit is None or limit < 0 or trainer.global_step >= limit
        done = self.final is not None and self.final["step"] == trainer.global_step
        return self.final_episodes > 0 and finished and not done

    # -- evaluations ------------------------------------------------------------------

    def _rollout(self, pl_module: L.LightningModule, seed: int, slots: int | None = None) -> EpisodeStats:
        if self._env is None:
            self._env = self.make_env()
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                stats = run_episodes(self._env, pl_module.act, seed, pl_module.device, slots=slots)
        finally:
            pl_module.train(was_training)
        if slots is not None:
            won = None if stats.won is None else stats.won[:slots]
            stats = EpisodeStats(returns=stats.returns[:slots], lengths=stats.lengths[:slots], won=won)
        return stats

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any] | None:
        """Run one periodic evaluation now (rank 0 only) and log it at the current step."""
        step = trainer.global_step
        self._last_step = step
        if not trainer.is_global_zero:
            return None
        start = time.perf_counter()
        seed = periodic_seed(self.seed, step)
        stats = self._rollout(pl_module, seed)
        record = {"step": step, **self._where(), **episode_record(stats, self.reference_returns, [seed])}
        record["seconds"] = time.perf_counter() - start
        self._log(trainer, "eval", record, step)
        self.history.append(record)
        self._write_records()
        print(f"[eval] step {step}: {self._text(record)} ({record['seconds']:.1f}s)", flush=True)
        return record

    def evaluate_final(
        self, trainer: L.Trainer, pl_module: L.LightningModule, log: bool = True
    ) -> dict[str, Any] | None:
        """The final evaluation: ``final_episodes`` episodes on the final seeds (rank 0 only)."""
        step = trainer.global_step
        if not trainer.is_global_zero:
            self.final = {"step": step}
            return None
        start = time.perf_counter()
        if self._env is None:
            self._env = self.make_env()
        width = self._env.num_envs
        parts, seeds = [], []
        for chunk in range(math.ceil(self.final_episodes / width)):
            slots = min(width, self.final_episodes - chunk * width)
            seeds.append(final_seed(self.seed, step, chunk))
            parts.append(self._rollout(pl_module, seeds[-1], None if slots == width else slots))
        record = {"step": step, "kind": "absolute_metrics", **self._where()}
        record.update(episode_record(concat_stats(parts), self.reference_returns, seeds))
        record["seconds"] = time.perf_counter() - start
        self.final = record
        if log:
            self._log(trainer, "final", record, step)
        self._write_records()
        print(
            f"[eval] final ({record['episodes']} episodes) at step {step}: {self._text(record)} "
            f"({record['seconds']:.1f}s)",
            flush=True,
        )
        return record

    # -- records ----------------------------------------------------------------------

    def _where(self) -> dict[str, str]:
        """The environment evaluated on (results tables group by it)."""
        spec = self._env.spec  # type: ignore[union-attr]
        return {"env_family": spec.family, "scenario": spec.scenario}

    @staticmethod
    def _text(record: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in _scalars(record).items() if k != "seconds")

    @staticmethod
    def _log(trainer: L.Trainer, prefix: str, record: dict[str, Any], step: int) -> None:
        if trainer.logger is not None:
            trainer.logger.log_metrics({f"{prefix}/{k}": v for k, v in _scalars(record).items()}, step=step)

    def _write_records(self) -> None:
        """Rewrite both files from the state, atomically (a resume drops records past its checkpoint)."""
        if self.results_file is not None and (self.history or self.results_file.exists()):
            with atomic_output(self.results_file, overwrite=True) as tmp:
                tmp.write_text("".join(json.dumps(record) + "\n" for record in self.history))
        if self.final_file is not None and self.final is not None and "returns" in self.final:
            with atomic_output(self.final_file, overwrite=True) as tmp:
                tmp.write_text(json.dumps(self.final, indent=1) + "\n")

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "last_step": self._last_step, "history": self.history, "final": self.final}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = state.get("seed", self.seed)
        self._last_step = state.get("last_step")
        self.history = list(state.get("history", []))
        self.final = state.get("final")
