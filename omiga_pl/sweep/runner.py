"""Run a grid of fit runs: ``python -m omiga_pl.sweep --config conf/sweep/<name>.yaml [key=value ...]``.

Every cell (dataset x algorithm x seed) is an ordinary ``fit`` run in
``<out_dir>/<dataset>/<algorithm>/seed_<s>/``, dispatched through submitit (local
processes, or a SLURM job array with ``--executor slurm``). Run the same command again
after an interruption: finished cells are skipped, interrupted ones resume from their
``last.ckpt``, failed ones are retried. Exit status 0 when every cell has finished,
1 when some failed or are still pending, 2 on a bad sweep file or option.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any

from omiga_pl.cli import parser_named
from omiga_pl.errors import ConfigError, OmigaError, one_line
from omiga_pl.io import atomic_output
from omiga_pl.sweep import dispatch
from omiga_pl.sweep.cell import FINISHED, read_record
from omiga_pl.sweep.dispatch import ExecutorOptions, cell_state
from omiga_pl.sweep.spec import Sweep, read_sweep
from omiga_pl.sweep.summary import cell_line, collect, write_summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = parser_named("omiga_pl.sweep")(
        prog="python -m omiga_pl.sweep", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--config", required=True, help="sweep file (conf/sweep/*.yaml)")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local")
    parser.add_argument(
        "--workers", type=int, default=0, help="local: cells at once (default: one per available core)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print each cell's state and exit")
    parser.add_argument(
        "--pack-seeds",
        choices=("auto", "always", "never"),
        default="auto",
        help="run the seeds of one dataset x algorithm as one seed ensemble (auto: on GPUs only)",
    )
    slurm = parser.add_argument_group("slurm")
    slurm.add_argument("--partition")
    slurm.add_argument("--account")
    slurm.add_argument("--qos")
    slurm.add_argument(
        "--time", type=int, dest="timeout_min", help="minutes per job (local: default 30 days)"
    )
    slurm.add_argument("--gpus-per-node", type=int, default=0)
    slurm.add_argument("--cpus-per-task", type=int, help="default: the sweep's threads")
    slurm.add_argument("--mem-gb", type=float)
    slurm.add_argument("--array-parallelism", type=int, default=256, help="array jobs running at once")
    slurm.add_argument(
        "--setup",
        action="append",
        default=[],
        help="shell line run before each job (repeat), e.g. module load",
    )
    slurm.add_argument("--no-wait", action="store_true", help="submit and return (rerun to collect)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the sweep file's keys")
    args = parser.parse_intermixed_args(argv)
    if args.workers < 0:
        parser.error(f"argument --workers: expected a non-negative count, found {args.workers}")
    return args


def options_from(args: argparse.Namespace) -> ExecutorOptions:
    if args.executor == "slurm" and args.timeout_min is None:
        raise ConfigError("command line: --time: a SLURM sweep needs a time limit per job (minutes)")
    return ExecutorOptions(
        kind=args.executor,
        workers=args.workers,
        timeout_min=args.timeout_min,
        partition=args.partition,
        account=args.account,
        qos=args.qos,
        gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task,
        mem_gb=args.mem_gb,
        array_parallelism=args.array_parallelism,
        setup=args.setup,
        wait=not args.no_wait,
        pack_seeds=args.pack_seeds,
    )


def _save_plan(sweep: Sweep, states: dict[str, str]) -> None:
    """The expanded grid as run (``<sweep>/sweep/plan.json``): each cell's configs and overrides."""
    plan = {
        "sweep": str(sweep.path),
        "cells": [
            {"key": c.key, "configs": list(c.configs), "overrides": list(c.overrides), "state": states[c.key]}
            for c in sweep.cells
        ],
    }
    with atomic_output(sweep.state_dir / "plan.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(plan, indent=1) + "\n")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_sweep(sweep: Sweep, options: ExecutorOptions) -> dict[str, Any]:
    """Run every cell that has not finished; returns the summary (also written to disk)."""
    from tqdm import tqdm

    states = {cell.key: cell_state(sweep, cell) for cell in sweep.cells}
    todo = [cell for cell in sweep.cells if states[cell.key] != "finished"]
    if options.kind == "slurm":
        alive = [c for c in todo if dispatch.slurm_job_alive(sweep, read_record(sweep.state_dir, c) or {})]
        for cell in alive:
            print(
                f"[sweep] {cell.key}: its SLURM job is still queued or running; not resubmitted", flush=True
            )
        todo = [c for c in todo if c not in alive]
    _save_plan(sweep, states)
    done = len(sweep.cells) - len(todo)
    resumed = sum(states[c.key] == "resume" for c in todo)
    workers = options.workers or dispatch.cores()
    print(
        f"[sweep] {sweep.name}: {len(sweep.cells)} cells, {done} finished, {resumed} to resume, "
        f"{len(todo) - resumed} to start; executor {options.kind}"
        + (f", {workers} at once x {sweep.threads} thread(s)" if options.kind == "local" else ""),
        flush=True,
    )
    dispatch.cell_environment(sweep.threads)
    tasks = dispatch.make_tasks(sweep, todo, options)
    start, cpu_start = time.perf_counter(), _children_cpu()
    invocation: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "executor": options.kind,
        "workers": workers if options.kind == "local" else None,
        "cells_run": len(todo),
        "interrupted": False,
    }
    try:
        if options.kind == "local":
            records = dispatch.run_local(sweep, tasks, options)
        else:
            jobs = dispatch.submit_slurm(sweep, tasks, options) if tasks else []
            ids = sorted({str(job.job_id).split("_")[0] for _, job in jobs})
            print(f"[sweep] submitted {len(jobs)} jobs to SLURM (job {', '.join(ids) or 'none'})", flush=True)
            records = dispatch.wait_slurm(sweep, jobs) if options.wait else iter(())
        with tqdm(total=len(sweep.cells), initial=done, desc="cells", unit="cell", file=sys.stderr) as bar:
            for record in records:
                done += 1
                bar.update(1)
                bar.write(f"[sweep] {done}/{len(sweep.cells)} {cell_line(record)}")
    except KeyboardInterrupt:
        invocation["interrupted"] = True
        print("[sweep] interrupted: run the same command again to resume", file=sys.stderr, flush=True)
        raise
    finally:
        invocation["wall_seconds"] = time.perf_counter() - start
        invocation["jobs_cpu_seconds"] = _children_cpu() - cpu_start
        states = {cell.key: cell_state(sweep, cell) for cell in sweep.cells}
        summary = write_summary(sweep, collect(sweep, states), invocation)
    failed = summary["failed"]
    print(
        f"[sweep] {summary['counts'].get(FINISHED, 0)}/{summary['cells']} cells finished; "
        f"{summary['wall_seconds']:.0f} s wall summed over cells, {summary['cpu_seconds']:.0f} s CPU; "
        f"this run {invocation['wall_seconds']:.0f} s; summary {sweep.state_dir / 'summary.md'}",
        flush=True,
    )
    for item in failed:
        print(f"[sweep] failed: {item['key']}: {item['error']}", flush=True)
    return summary


def dry_run(sweep: Sweep) -> None:
    for cell in sweep.cells:
        print(f"{cell_state(sweep, cell):9s} {cell.key}  ->  {cell.run_dir}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        options = options_from(args)
        sweep = read_sweep(args.config, args.overrides)
        if args.dry_run:
            dry_run(sweep)
            return 0
        summary = run_sweep(sweep, options)
    except OmigaError as error:
        print(f"omiga_pl.sweep: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if summary["counts"].get(FINISHED, 0) == summary["cells"] else 1
