"""Online evaluation as a callback that never touches training state.

Two kinds of evaluation, both greedy (acting is argmax / the deterministic action):

* **periodic**: every ``every`` updates (and once at the end) ``episodes`` parallel
  episodes are rolled out and logged as ``eval/*``; records go to ``eval.jsonl``.
* **final** (the field's ``absolute_metrics``): once training has reached
  ``trainer.max_steps``, ``final_episodes`` episodes (default 10x ``episodes``) are run
  in chunks of the env's slots, logged as ``final/*`` and written to ``final_eval.json``.

Under DDP with W processes the episodes are split: every rank builds an env of
w = ceil(episodes / W) slots (:func:`omiga_pl.evaluation.slots_per_rank`); an evaluation
is cut into chunks of w episodes, rank r runs chunks r, r + W, ... and
:class:`omiga_pl.evaluation.EpisodeMetrics` (torchmetrics, ``cat`` reduction) gathers
every rank's episodes in chunk order, so each rank holds the same record and rank 0 logs
and writes it. With W = 1 this is exactly one chunk of ``episodes`` slots (periodic) and
the same chunks as before (final). The episodes depend on w (the slot width fixes how
reset seeds are split), so a W-process run evaluates on other episodes than a 1-process
run; for a given W they are a pure function of (seed, update), resumes included.

Seeds: chunk ``k`` of a periodic evaluation at update ``t`` resets its env with
:func:`periodic_seed` in ``[0, 2**31)`` (chunk 0: the seed a single process uses); chunk
``k`` of the final one with
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
from omiga_pl.evaluation import EpisodeMetrics, rank_chunks, run_episodes, slots_per_rank
from omiga_pl.io import atomic_output
from omiga_pl.rollout import EpisodeStats

__all__ = ["EVAL_FILE", "FINAL_FILE", "EvaluationCallback", "final_seed", "periodic_seed"]

EVAL_FILE = "eval.jsonl"
FINAL_FILE = "final_eval.json"
SEED_HALF = 2**31  # periodic seeds below, final seeds at or above
FINAL_STREAM = 1  # batch_seed stream of the final evaluation's chunks
PERIODIC_STREAM = 2  # batch_seed stream of periodic chunks 1, 2, ... (DDP splits)


def periodic_seed(seed: int, step: int, chunk: int = 0) -> int:
    """Reset seed of chunk ``chunk`` of the periodic evaluation at ``step``: in ``[0, 2**31)``.

    Chunk 0 is the whole evaluation of a single process (its seed is unchanged by DDP
    splitting); further chunks exist only when the episodes are split over ranks.
    """
    if chunk == 0:
        return batch_seed(seed, 0, step, bits=31)
    return batch_seed(seed, chunk, step, bits=31, stream=PERIODIC_STREAM)


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


def rank_and_world() -> tuple[int, int]:
    """(global rank, world size) of this process: torch.distributed's when initialised
    (Lightning's DDP), else (0, 1). Read from the process group rather than the trainer,
    so views of the trainer (the ensemble's) split the same way."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _scalars(record: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in record.items() if isinstance(v, float)}


class EvaluationCallback(L.Callback):
    """Periodic greedy evaluation and the final (``absolute_metrics``) one.

    Args:
        make_env: ``make_env(num_envs)`` builds a vectorised env of that many slots
            (called once per process, lazily, with ``ceil(episodes / world_size)``).
        every: evaluate when ``global_step % every == 0``.
        seed: base seed of the evaluation episodes.
        reference_returns: (random, expert) returns for ``eval/normalized_score``.
        results_file: if given, the periodic records are written there as JSON lines.
        final_episodes: episodes of the final evaluation (0: none). It runs in chunks of
            the env's slots, the last chunk counting only its first slots.
        final_file: where the final record is written (JSON).
        episodes: episodes of every periodic evaluation (split over DDP ranks).
    """

    def __init__(
        self,
        make_env: Callable[[int], VecMultiAgentEnv],
        every: int,
        seed: int,
        reference_returns: tuple[float, float] | None = None,
        results_file: str | Path | None = None,
        final_episodes: int = 0,
        final_file: str | Path | None = None,
        episodes: int = 1,
    ) -> None:
        self.make_env = make_env
        self.episodes = int(episodes)
        self.every = every
        self.seed = seed
        self.reference_returns = reference_returns
        self.results_file = Path(results_file) if results_file else None
        self.final_episodes = final_episodes
        self.final_file = Path(final_file) if final_file else None
        self.history: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self._env: VecMultiAgentEnv | None = None
        self._metrics: EpisodeMetrics | None = None
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

    def _ensure_env(self, trainer: L.Trainer, pl_module: L.LightningModule) -> VecMultiAgentEnv:
        if self._env is None:
            self._env = self.make_env(slots_per_rank(self.episodes, rank_and_world()[1]))
            self._metrics = EpisodeMetrics(self._env.spec.has_win_signal).to(pl_module.device)
        return self._env

    def _rollout(self, pl_module: L.LightningModule, seed: int, slots: int | None = None) -> EpisodeStats:
        assert self._env is not None
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

    def _run_split(
        self, trainer: L.Trainer, pl_module: L.LightningModule, total: int, seeds: list[int]
    ) -> EpisodeStats:
        """``total`` episodes in chunks of the env's width, chunk k reset with ``seeds[k]``:
        this rank runs its share (:func:`rank_chunks`), every rank returns all of them."""
        env = self._ensure_env(trainer, pl_module)
        metrics = self._metrics
        assert metrics is not None
        width = env.num_envs
        mine = rank_chunks(len(seeds), *rank_and_world())
        for chunk in mine:
            slots = min(width, total - chunk * width)
            metrics.update(
                self._rollout(pl_module, seeds[chunk], None if slots == width else slots), chunk, width
            )
        if not mine:
            metrics.empty()
        try:
            return metrics.compute()  # syncs across ranks (a collective) under DDP
        finally:
            metrics.reset()

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any] | None:
        """Run one periodic evaluation now (split over the ranks) and log it at the current step.

        Every rank must call it (it syncs); every rank keeps the record, rank 0 returns,
        logs and writes it.
        """
        step = trainer.global_step
        self._last_step = step
        start = time.perf_counter()
        width = self._ensure_env(trainer, pl_module).num_envs
        seeds = [periodic_seed(self.seed, step, k) for k in range(math.ceil(self.episodes / width))]
        stats = self._run_split(trainer, pl_module, self.episodes, seeds)
        record = {"step": step, **self._where(), **episode_record(stats, self.reference_returns, seeds)}
        record["seconds"] = time.perf_counter() - start
        record["processes"] = rank_and_world()[1]
        self.history.append(record)
        if not trainer.is_global_zero:
            return None
        self._log(trainer, "eval", record, step)
        self._write_records()
        print(f"[eval] step {step}: {self._text(record)} ({record['seconds']:.1f}s)", flush=True)
        return record

    def evaluate_final(
        self, trainer: L.Trainer, pl_module: L.LightningModule, log: bool = True
    ) -> dict[str, Any] | None:
        """The final evaluation: ``final_episodes`` episodes on the final seeds, split over ranks."""
        step = trainer.global_step
        start = time.perf_counter()
        width = self._ensure_env(trainer, pl_module).num_envs
        seeds = [final_seed(self.seed, step, k) for k in range(math.ceil(self.final_episodes / width))]
        stats = self._run_split(trainer, pl_module, self.final_episodes, seeds)
        record = {"step": step, "kind": "absolute_metrics", **self._where()}
        record.update(episode_record(stats, self.reference_returns, seeds))
        record["seconds"] = time.perf_counter() - start
        record["processes"] = rank_and_world()[1]
        self.final = record
        if not trainer.is_global_zero:
            return None
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
