"""The sweep's summary: every cell's status, cost and final score, and what failed.

Written atomically to ``<sweep>/sweep/summary.json`` and ``summary.md`` after every
sweep run (also an interrupted one); ``invocations.jsonl`` gets one line per sweep
run (wall seconds, CPU seconds of its jobs, cells run).
"""

from __future__ import annotations

import json
from typing import Any

from omiga_pl.io import atomic_output
from omiga_pl.sweep.cell import FINISHED, read_record, totals
from omiga_pl.sweep.spec import Sweep

SCORE_KEYS = ("win_rate", "normalized_score", "return_mean")  # a record's first present one leads


def cell_line(record: dict[str, Any]) -> str:
    """One line for a cell that just ended."""
    cost = totals(record)
    where = f"{cost['wall_seconds']:.1f} s wall, {cost['cpu_seconds']:.1f} s CPU"
    if record.get("status") != FINISHED:
        return f"FAILED {record['key']}: {record.get('error')} ({where})"
    final = record.get("final") or record.get("last_eval") or {}
    which = "final" if record.get("final") else "last eval"
    scores = ", ".join(f"{k} {final[k]:.3f}" for k in SCORE_KEYS if k in final)
    scores = f", {which} {scores}" if scores else ""
    return f"finished {record['key']}: {record.get('updates')} updates{scores} ({where})"


def collect(sweep: Sweep, states: dict[str, str]) -> list[dict[str, Any]]:
    """A row per cell of the grid, from its record (``pending`` when never run)."""
    rows = []
    for cell in sweep.cells:
        record = read_record(sweep.state_dir, cell) or {}
        status = record.get("status") or "pending"
        if status == FINISHED and states.get(cell.key) not in (None, "finished"):
            status = "stale"  # finished with another config: to be resumed
        rows.append(
            {
                "key": cell.key,
                "dataset": cell.dataset,
                "algorithm": cell.algorithm,
                "seed": cell.seed,
                "run_dir": cell.run_dir,
                "status": status,
                "updates": record.get("updates"),
                "final": record.get("final"),
                "error": record.get("error") if status != FINISHED else None,
                **totals(record),
            }
        )
    return rows


def write_summary(sweep: Sweep, rows: list[dict[str, Any]], invocation: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    summary = {
        "sweep": str(sweep.path),
        "name": sweep.name,
        "out_dir": str(sweep.out_dir),
        "cells": len(rows),
        "counts": counts,
        "wall_seconds": sum(r["wall_seconds"] for r in rows),
        "cpu_seconds": sum(r["cpu_seconds"] for r in rows),
        "failed": [{"key": r["key"], "error": r["error"]} for r in rows if r["status"] == "failed"],
        "rows": rows,
    }
    state = sweep.state_dir
    with atomic_output(state / "summary.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    with atomic_output(state / "summary.md", overwrite=True) as tmp:
        tmp.write_text(markdown(summary))
    log = state / "invocations.jsonl"
    previous = log.read_text() if log.exists() else ""
    with atomic_output(log, overwrite=True) as tmp:
        tmp.write_text(previous + json.dumps(invocation) + "\n")
    return summary


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# Sweep {summary['name']}",
        "",
        f"{summary['cells']} cells: "
        + ", ".join(f"{n} {status}" for status, n in sorted(summary["counts"].items()))
        + f". Cost of the attempts that ended: {summary['wall_seconds']:.0f} s wall (summed over cells), "
        f"{summary['cpu_seconds']:.0f} s CPU.",
        "",
        "| cell | status | updates | final score | wall s | CPU s | attempts |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary["rows"]:
        final = row.get("final") or {}
        score = next((f"{k} {final[k]:.3f}" for k in SCORE_KEYS if k in final), "")
        lines.append(
            f"| {row['key']} | {row['status']} | {row['updates'] or ''} | {score} | "
            f"{row['wall_seconds']:.1f} | {row['cpu_seconds']:.1f} | {row['n_attempts']} |"
        )
    if summary["failed"]:
        lines += ["", "## Failed", ""]
        lines += [f"- `{f['key']}`: {f['error']}" for f in summary["failed"]]
    return "\n".join(lines) + "\n"
