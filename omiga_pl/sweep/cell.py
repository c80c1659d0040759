"""Run one cell (inside a job): fresh, or resumed from its ``last.ckpt``; record what happened.

The cell record ``<sweep>/sweep/cells/<dataset>/<algorithm>/seed_<s>.json`` is the
runner's memory of a cell: its status (``running``, ``finished``, ``failed``), the
fingerprint of the config it finished with, and one entry per attempt (the update it
started from, the update it reached, wall and CPU seconds, the error). It is written
atomically when an attempt starts and when it ends, so a killed attempt shows as
``running`` with no end, and the next sweep run resumes it from its checkpoint.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from omiga_pl.errors import OmigaError, one_line
from omiga_pl.io import atomic_output
from omiga_pl.sweep.spec import Cell

FINISHED, FAILED, RUNNING = "finished", "failed", "running"


def record_path(state_dir: str | Path, cell: Cell) -> Path:
    return Path(state_dir) / "cells" / f"{cell.key}.json"


def read_record(state_dir: str | Path, cell: Cell) -> dict[str, Any] | None:
    """The cell's record, or None if the runner never started it (or the file is unreadable)."""
    path = record_path(state_dir, cell)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_record(state_dir: str | Path, cell: Cell, record: dict[str, Any]) -> None:
    with atomic_output(record_path(state_dir, cell), overwrite=True) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")


def new_record(cell: Cell) -> dict[str, Any]:
    return {
        "key": cell.key,
        "dataset": cell.dataset,
        "algorithm": cell.algorithm,
        "seed": cell.seed,
        "run_dir": cell.run_dir,
        "status": None,
        "fingerprint": None,
        "attempts": [],
    }


def totals(record: dict[str, Any]) -> dict[str, float]:
    """Wall and CPU seconds over the attempts that ended (a killed attempt's are unknown)."""
    ended = [a for a in record.get("attempts", []) if a.get("wall_seconds") is not None]
    return {
        "wall_seconds": sum(a["wall_seconds"] for a in ended),
        "cpu_seconds": sum(a["cpu_seconds"] for a in ended),
        "n_attempts": len(record.get("attempts", [])),
        "unaccounted_attempts": len(record.get("attempts", [])) - len(ended),
    }


def _cpu_seconds() -> float:
    """CPU time of this process and its waited-for children, user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _clear_unfinished_start(run_dir: Path, record: dict[str, Any] | None) -> None:
    """A run directory without a checkpoint left by an earlier attempt of this cell holds
    nothing worth keeping (no update is saved); clear it so fit may start afresh. A
    directory this runner did not start is left alone (fit then refuses it, clearly)."""
    from omiga_pl.rundir import _busy

    if record is None or not record.get("attempts") or not run_dir.is_dir() or _busy(run_dir):
        return
    shutil.rmtree(run_dir)


def run_cell(cell: Cell, state_dir: str, cpu_before: float = 0.0) -> dict[str, Any]:
    """Run (or resume) one cell to its end; never raises for a failing run: the error is
    recorded and returned. Returns the cell record. ``cpu_before``: CPU seconds spent on
    this cell before the call (the job process's start-up, counted in its cost)."""
    from omiga_pl.fit import parse_args, prepare, run

    start, cpu_start = time.perf_counter(), _cpu_seconds() - cpu_before
    record = read_record(state_dir, cell)
    previous = record
    record = record or new_record(cell)
    run_dir = Path(cell.run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    attempt: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "resumed_from": str(last) if last.is_file() else None,
        "start_step": 0,
    }
    record["status"] = RUNNING
    record["attempts"].append(attempt)
    write_record(state_dir, cell, record)
    argv = [item for config in cell.configs for item in ("--config", config)]
    try:
        if last.is_file():
            args = parse_args([*argv, "--resume", str(last), *cell.overrides])
        else:
            _clear_unfinished_start(run_dir, previous)
            args = parse_args([*argv, *cell.overrides])
        config, checkpoint = prepare(args)
        if checkpoint is not None:
            attempt["start_step"] = int(checkpoint.get("global_step", 0))
        summary = run(config, resume=args.resume, checkpoint=checkpoint)
        attempt.update(status=FINISHED, end_step=summary["global_step"])
        record.update(
            status=FINISHED,
            fingerprint=cell.fingerprint(),
            updates=summary["global_step"],
            final=_scalars(summary.get("final_eval")),
            last_eval=_scalars(summary.get("eval")),
            error=None,
        )
    except OmigaError as error:
        attempt.update(status=FAILED, error=one_line(error))
        record.update(status=FAILED, error=attempt["error"])
    except Exception as error:  # a crash of the run itself: keep its tail for the summary
        tail = traceback.format_exception(error)[-3:]
        attempt.update(status=FAILED, error=one_line(f"{type(error).__name__}: {error}"), traceback=tail)
        record.update(status=FAILED, error=attempt["error"])
    attempt["wall_seconds"] = time.perf_counter() - start
    attempt["cpu_seconds"] = _cpu_seconds() - cpu_start
    record.update(totals(record))
    write_record(state_dir, cell, record)
    return record


def _scalars(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if not record:
        return None
    return {k: v for k, v in record.items() if isinstance(v, int | float | str) and not isinstance(v, bool)}


def run_cells(cells: list[Cell], state_dir: str) -> list[dict[str, Any]]:
    """The job body of the default dispatch: the given cells one after another (the
    job process's start-up CPU, imports included, is charged to the first)."""
    startup = _cpu_seconds()
    return [run_cell(cell, state_dir, startup if i == 0 else 0.0) for i, cell in enumerate(cells)]
