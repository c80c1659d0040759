"""Cells to jobs, jobs to submitit: the local executor (processes here) or SLURM.

:func:`make_tasks` is the one place that decides how cells become jobs (default: one
job per cell running :func:`omiga_pl.sweep.cell.run_cells`); a dispatch that packs
several cells into one job (seed ensembles on one GPU, say) replaces it and returns
tasks covering several cells, each job returning one record per cell.

submitit runs every job as its own process (pickled call, logs, result or exception
in ``<sweep>/sweep/jobs/``). Locally at most ``workers`` jobs run at once (each cell
uses ``threads`` torch threads: two one-thread cells side by side beat one two-thread
cell, so the default is one cell per core); on SLURM every pending cell goes into one
job array and the array's parallelism is the cluster's business.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omiga_pl.errors import ConfigError, one_line
from omiga_pl.sweep.cell import FAILED, FINISHED, new_record, read_record, run_cells, totals, write_record
from omiga_pl.sweep.spec import Cell, Sweep

POLL_SECONDS = 0.5
LOCAL_TIMEOUT_MIN = 60 * 24 * 30  # submitit's local default (2 min) would kill real runs


@dataclass
class Task:
    """One job: ``fn(*args)`` returns one cell record per cell in ``cells``."""

    cells: list[Cell]
    fn: Callable[..., list[dict[str, Any]]]
    args: tuple[Any, ...]


@dataclass
class ExecutorOptions:
    """How jobs run: ``local`` (``workers`` at once) or ``slurm`` (sbatch options)."""

    kind: str = "local"
    workers: int = 0  # 0: one per core available to this process
    timeout_min: int | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int | None = None  # default: the sweep's threads
    mem_gb: float | None = None
    array_parallelism: int = 256
    setup: list[str] = field(default_factory=list)
    wait: bool = True
    # Seeds of one (dataset, algorithm) as one ensemble job: "auto" (on GPUs), "always", "never".
    pack_seeds: str = "auto"


def cores() -> int:
    """Cores this process may use (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cell_state(sweep: Sweep, cell: Cell) -> str:
    """``finished`` (same config, done), ``resume`` (a last.ckpt to continue) or ``fresh``."""
    record = read_record(sweep.state_dir, cell)
    if record and record.get("status") == FINISHED and record.get("fingerprint") == cell.fingerprint():
        return "finished"
    if (Path(cell.run_dir) / "checkpoints" / "last.ckpt").is_file():
        return "resume"
    return "fresh"


def make_tasks(sweep: Sweep, cells: list[Cell], options: ExecutorOptions) -> list[Task]:
    """One job per cell; cells that differ only in their seed share one seed-ensemble job
    where ``options.pack_seeds`` says so (default: on GPUs; omiga_pl/ensemble_sweep.py)."""
    from omiga_pl.ensemble_sweep import pack_tasks

    def one(cell: Cell) -> Task:
        return Task([cell], run_cells, ([cell], str(sweep.state_dir)))

    return pack_tasks(cells, str(sweep.state_dir), options.pack_seeds, one, Task)


def make_executor(sweep: Sweep, options: ExecutorOptions) -> Any:
    """A submitit executor writing its job files under ``<sweep>/sweep/jobs``."""
    import submitit

    folder = sweep.state_dir / "jobs" / "%j"
    if options.kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=options.timeout_min or LOCAL_TIMEOUT_MIN)
        return executor
    if options.kind != "slurm":
        raise ConfigError(f"command line: --executor: expected 'local' or 'slurm', found '{options.kind}'")
    if options.timeout_min is None:
        raise ConfigError("command line: --time: a SLURM sweep needs a time limit per job (minutes)")
    executor = submitit.SlurmExecutor(folder=folder)
    params: dict[str, Any] = {
        "time": options.timeout_min,
        "cpus_per_task": options.cpus_per_task or sweep.threads,
        "ntasks_per_node": 1,
        "nodes": 1,
        "job_name": f"omiga_sweep_{sweep.name}",
        "array_parallelism": options.array_parallelism,
        "setup": list(options.setup),
    }
    if options.partition:
        params["partition"] = options.partition
    if options.account:
        params["account"] = options.account
    if options.qos:
        params["qos"] = options.qos
    if options.gpus_per_node:
        params["gpus_per_node"] = options.gpus_per_node
    if options.mem_gb:
        params["mem"] = f"{int(options.mem_gb * 1024)}MB"
    executor.update_parameters(**params)
    return executor


def cell_environment(threads: int) -> None:
    """Thread limits the job processes inherit (submitit copies this environment)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    # SMAX runs in JAX: keep XLA's CPU work on the cell's own thread (Eigen's pool off).
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


_TRACE_RULE = "-" * 22  # submitit frames a failed job's traceback between two such rules


def job_error_text(error: BaseException) -> str:
    """One line saying why a job failed: the exception line of the job's own traceback
    when submitit sends one (``FailedJobError``), else the head of submitit's message
    (a job that produced no result: killed, out of memory)."""
    message = str(error).strip()
    if not message:
        return type(error).__name__
    lines = message.splitlines()
    if _TRACE_RULE in lines:
        start = lines.index(_TRACE_RULE) + 1
        end = lines.index(_TRACE_RULE, start) if _TRACE_RULE in lines[start:] else len(lines)
        trace = [line for line in lines[start:end] if line.strip()]
        if trace:
            return one_line(trace[-1])
    return one_line(" ".join(lines[:2]))


def failure_records(sweep: Sweep, task: Task, error: BaseException, job: Any) -> list[dict[str, Any]]:
    """Records for the cells of a job that died without returning (crash, kill, timeout)."""
    out = []
    text = job_error_text(error)
    log = getattr(getattr(job, "paths", None), "stderr", None)
    for cell in task.cells:
        record = read_record(sweep.state_dir, cell) or new_record(cell)
        attempts = record.setdefault("attempts", [])
        if attempts and attempts[-1].get("status") is None:
            attempts[-1].update(status=FAILED, error=text)
        record.update(status=FAILED, error=f"job {getattr(job, 'job_id', '?')} died: {text}")
        record["job_log"] = str(log) if log else None
        record.update(totals(record))
        write_record(sweep.state_dir, cell, record)
        out.append(record)
    return out


def run_local(sweep: Sweep, tasks: list[Task], options: ExecutorOptions) -> Iterator[dict[str, Any]]:
    """Run the tasks through submitit's local executor, ``workers`` at a time; yields
    every cell record as its job ends. On an interrupt the running jobs are stopped
    (SIGINT, as Ctrl-C would) before the interrupt propagates."""
    executor = make_executor(sweep, options)
    workers = options.workers or cores()
    queue = list(tasks)
    running: list[tuple[Task, Any]] = []
    try:
        while queue or running:
            while queue and len(running) < workers:
                task = queue.pop(0)
                running.append((task, executor.submit(task.fn, *task.args)))
            time.sleep(POLL_SECONDS)
            for task, job in list(running):
                if not job.done():
                    continue
                running.remove((task, job))
                yield from _results(sweep, task, job)
    except BaseException:
        for _, job in running:
            job.cancel(check=False)
        deadline = time.monotonic() + 30
        while any(not job.done() for _, job in running) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        raise


def _results(sweep: Sweep, task: Task, job: Any) -> Iterator[dict[str, Any]]:
    try:
        records = job.result()
    except Exception as error:  # submitit's FailedJobError / UncompletedJobError
        records = failure_records(sweep, task, error, job)
    yield from records


def submit_slurm(sweep: Sweep, tasks: list[Task], options: ExecutorOptions) -> list[tuple[Task, Any]]:
    """Submit every task as one SLURM job array; record each cell's job id."""
    executor = make_executor(sweep, options)
    jobs = []
    with executor.batch():
        for task in tasks:
            jobs.append((task, executor.submit(task.fn, *task.args)))
    for task, job in jobs:
        for cell in task.cells:
            record = read_record(sweep.state_dir, cell) or new_record(cell)
            record.update(status="submitted", slurm_job=str(job.job_id))
            write_record(sweep.state_dir, cell, record)
    return jobs


def wait_slurm(sweep: Sweep, jobs: list[tuple[Task, Any]]) -> Iterator[dict[str, Any]]:
    """Yield records as the array's jobs end (submitit polls sacct)."""
    pending = list(jobs)
    while pending:
        time.sleep(max(POLL_SECONDS, 10.0))
        for task, job in list(pending):
            if job.done():
                pending.remove((task, job))
                yield from _results(sweep, task, job)


def slurm_job_alive(sweep: Sweep, record: dict[str, Any]) -> bool:
    """Is the cell's SLURM job still queued or running? (False when it cannot be asked.)"""
    job_id = record.get("slurm_job")
    if not job_id or record.get("status") != "submitted":
        return False
    try:
        import submitit

        state = submitit.SlurmJob(folder=sweep.state_dir / "jobs" / "%j", job_id=job_id).state
    except Exception:
        return False
    return state.upper() in {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED"}
