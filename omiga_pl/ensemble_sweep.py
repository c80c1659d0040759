"""Sweep cells that differ only in their seed, packed into one seed-ensemble job.

The sweep runner (omiga_pl/sweep/) makes one job per cell by default. With
``--pack-seeds`` the cells of one (dataset, algorithm) that differ only in ``seed`` run
as one ensemble fit (omiga_pl/ensemble.py): ``log.out_dir=<sweep>/<dataset>``,
``log.run_name=<algorithm>``, so the ensemble's members write exactly the cells' run
directories ``<sweep>/<dataset>/<algorithm>/seed_<s>/`` (config, evaluation records,
TensorBoard scalars) and the ensemble's own config and checkpoints sit one level up.
Every cell still gets its own record (status, updates, last and final evaluation); the
job's wall and CPU time are split evenly over its cells.

``auto`` (the default) packs on GPUs only: there one update of these small nets is
launch-bound and K members cost about one; on CPU the update is compute-bound and
one-thread cells side by side are faster (docs/performance.md, benchmarks/ensemble_speed.py).
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from omiga_pl.ensemble import ENSEMBLE_ALGORITHMS
from omiga_pl.errors import OmigaError, one_line

PACK_CHOICES = ("auto", "always", "never")
# Overrides the sweep sets per cell; the rest must agree for cells to share a job.
PER_CELL = ("seed=", "log.run_name=", "log.out_dir=")


def on_gpu(config: DictConfig) -> bool:
    """Does this fit config train on a CUDA device?"""
    accelerator = str(config.trainer.accelerator)
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def should_pack(config: DictConfig, mode: str) -> bool:
    """Pack this group's seeds into one ensemble (``mode``: one of :data:`PACK_CHOICES`)?"""
    if mode == "never" or config.algo.name not in ENSEMBLE_ALGORITHMS:
        return False
    return mode == "always" or on_gpu(config)


def group_key(cell: Any) -> tuple:
    shared = tuple(item for item in cell.overrides if not item.startswith(PER_CELL))
    return (cell.dataset, cell.algorithm, cell.configs, shared)


def pack_tasks(
    cells: list[Any], state_dir: str, mode: str, one_task: Callable[[Any], Any], task: type
) -> list:
    """Tasks for ``cells``: one per packable group of seeds, ``one_task(cell)`` for the rest.

    A group is not packed when one of its cells already has a single-run checkpoint (it
    resumes as it started).
    """
    groups: dict[tuple, list[Any]] = {}
    for cell in cells:
        groups.setdefault(group_key(cell), []).append(cell)
    tasks = []
    for group in groups.values():
        started_alone = any((Path(c.run_dir) / "checkpoints" / "last.ckpt").is_file() for c in group)
        if len(group) > 1 and not started_alone and should_pack(group[0].config(), mode):
            tasks.append(task(group, run_ensemble_cells, (group, state_dir)))
        else:
            tasks += [one_task(cell) for cell in group]
    return tasks


def ensemble_location(cells: list[Any]) -> tuple[Path, str]:
    """(log.out_dir, log.run_name) of the ensemble whose members are ``cells``' run directories."""
    algorithm_dir = Path(cells[0].run_dir).parent
    return algorithm_dir.parent, algorithm_dir.name


def _member_records(run_dir: Path) -> tuple[dict | None, dict | None]:
    from omiga_pl.callbacks.evaluation import EVAL_FILE, FINAL_FILE

    last = final = None
    if (run_dir / EVAL_FILE).is_file():
        lines = (run_dir / EVAL_FILE).read_text().splitlines()
        last = json.loads(lines[-1]) if lines else None
    if (run_dir / FINAL_FILE).is_file():
        final = json.loads((run_dir / FINAL_FILE).read_text())
    return last, final


def _scalars(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if not record:
        return None
    return {k: v for k, v in record.items() if isinstance(v, int | float | str) and not isinstance(v, bool)}


def run_ensemble_cells(cells: list[Any], state_dir: str) -> list[dict[str, Any]]:
    """The job body of a packed group: one ensemble fit (fresh or resumed); one record per cell."""
    from omiga_pl.fit import parse_args, prepare, run
    from omiga_pl.sweep.cell import (
        FAILED,
        FINISHED,
        RUNNING,
        _clear_unfinished_start,
        _cpu_seconds,
        new_record,
        read_record,
        totals,
        write_record,
    )

    start, cpu_start = time.perf_counter(), _cpu_seconds()
    out_dir, name = ensemble_location(cells)
    ensemble_dir = out_dir / name
    last = ensemble_dir / "checkpoints" / "last.ckpt"
    records = []
    for cell in cells:
        record = read_record(state_dir, cell)
        if record and not last.is_file():
            _clear_unfinished_start(ensemble_dir, record)
        record = record or new_record(cell)
        record["status"] = RUNNING
        record["ensemble_dir"] = str(ensemble_dir)
        record["attempts"].append(
            {
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "resumed_from": str(last) if last.is_file() else None,
                "start_step": 0,
                "ensemble_of": len(cells),
            }
        )
        write_record(state_dir, cell, record)
        records.append(record)
    seeds = ",".join(str(cell.seed) for cell in cells)
    overrides = [item for item in cells[0].overrides if not item.startswith(PER_CELL)]
    overrides += [
        f"seeds=[{seeds}]",
        f"seed={cells[0].seed}",
        f"log.out_dir={out_dir}",
        f"log.run_name={name}",
    ]
    argv = [item for config in cells[0].configs for item in ("--config", config)]
    outcome: dict[str, Any]
    try:
        resume = ["--resume", str(last)] if last.is_file() else []
        config, checkpoint = prepare(parse_args([*argv, *resume, *overrides]))
        step = int(checkpoint.get("global_step", 0)) if checkpoint is not None else 0
        for record in records:
            record["attempts"][-1]["start_step"] = step
        summary = run(config, resume=str(last) if resume else None, checkpoint=checkpoint)
        outcome = {"status": FINISHED, "end_step": summary["global_step"]}
    except OmigaError as error:
        outcome = {"status": FAILED, "error": one_line(error)}
    except Exception as error:  # a crash of the run itself
        outcome = {
            "status": FAILED,
            "error": one_line(f"{type(error).__name__}: {error}"),
            "traceback": traceback.format_exception(error)[-3:],
        }
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    for cell, record in zip(cells, records):
        attempt = record["attempts"][-1]
        attempt.update(outcome, wall_seconds=wall / len(cells), cpu_seconds=cpu / len(cells))
        if outcome["status"] == FINISHED:
            last_eval, final_eval = _member_records(Path(cell.run_dir))
            record.update(
                status=FINISHED,
                fingerprint=cell.fingerprint(),
                updates=outcome["end_step"],
                final=_scalars(final_eval),
                last_eval=_scalars(last_eval),
                error=None,
            )
        else:
            record.update(status=FAILED, error=outcome["error"])
        record.update(totals(record))
        write_record(state_dir, cell, record)
    return records
