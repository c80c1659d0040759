"""Find run directories under a folder and load their evaluation records.

A run directory is any directory holding a ``config.yaml`` (the resolved config fit
saved) and evaluation records (``eval.jsonl`` and/or ``final_eval.json``), found
recursively, so sweeps (``<sweep>/<dataset>/<algorithm>/seed_<s>/``) and other layouts
(ensemble runs ``runs/<name>/seed_<s>/``) load alike. What a run is comes from its
files, not from a sweep file:

* algorithm label: the parent directory's name when the run directory is called
  ``seed_<n>`` (a sweep's label, e.g. ``omiga_reference``), else ``algo.name``;
* task: the dataset file's stem (``data.path``); environment: the records' ``env_family``;
* seed: ``seed``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from omiga_pl.callbacks.evaluation import EVAL_FILE, FINAL_FILE
from omiga_pl.errors import OmigaError, one_line

SEED_DIR = re.compile(r"^seed_(\d+)$")


class ResultsError(OmigaError):
    """A results folder or one of its records cannot be read."""


@dataclass
class Run:
    """One run: where it lives, what it is, and its records (oldest first)."""

    run_dir: Path
    env: str
    task: str
    algorithm: str
    seed: int
    periodic: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.env, self.task, self.algorithm, self.seed)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise ResultsError(f"{path}: cannot read the run's config: {one_line(error)}") from None
    if not isinstance(config, dict):
        raise ResultsError(f"{path}: expected a mapping of config keys, found {type(config).__name__}")
    for key in ("seed", "data", "algo"):
        if key not in config:
            raise ResultsError(f"{path}: key '{key}': missing (not a config fit saved)")
    return config


def _read_periodic(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise ResultsError(f"{path}: line {number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict) or "step" not in record or "returns" not in record:
            raise ResultsError(
                f"{path}: line {number}: expected an evaluation record with 'step' and per-episode "
                "'returns' (written by omiga_pl's evaluation)"
            )
        records.append(record)
    return records


def _read_final(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ResultsError(f"{path}: cannot read the final evaluation: {one_line(error)}") from None
    if not isinstance(record, dict) or "returns" not in record:
        raise ResultsError(f"{path}: expected a final evaluation record with per-episode 'returns'")
    return record


def load_run(run_dir: Path) -> Run:
    config = _read_config(run_dir / "config.yaml")
    periodic = _read_periodic(run_dir / EVAL_FILE)
    final = _read_final(run_dir / FINAL_FILE)
    first = final or (periodic[0] if periodic else {})
    env = first.get("env_family") or (config.get("env") or {}).get("family") or "unknown"
    match = SEED_DIR.match(run_dir.name)
    algorithm = run_dir.parent.name if match else str(config["algo"].get("name", "unknown"))
    return Run(
        run_dir=run_dir,
        env=str(env),
        task=Path(str(config["data"].get("path", "unknown"))).stem,
        algorithm=algorithm,
        seed=int(config["seed"]),
        periodic=periodic,
        final=final,
        config=config,
    )


def find_runs(root: str | Path) -> list[Run]:
    """Every run directory under ``root`` (sorted by env, task, algorithm, seed).

    Raises ResultsError if ``root`` is not a directory, holds no run, or two runs
    claim the same (env, task, algorithm, seed).
    """
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"{root}: not a directory (expected a sweep directory or a folder of runs)")
    runs: dict[tuple[str, str, str, int], Run] = {}
    for config in sorted(root.rglob("config.yaml")):
        run_dir = config.parent
        if not ((run_dir / EVAL_FILE).is_file() or (run_dir / FINAL_FILE).is_file()):
            continue
        run = load_run(run_dir)
        if run.key in runs:
            raise ResultsError(
                f"{run_dir}: the same run (env {run.env}, task {run.task}, algorithm {run.algorithm}, "
                f"seed {run.seed}) as {runs[run.key].run_dir}; keep one"
            )
        runs[run.key] = run
    if not runs:
        raise ResultsError(
            f"{root}: no run directories found (a run directory holds config.yaml and {EVAL_FILE} "
            f"or {FINAL_FILE}; was evaluation on?)"
        )
    return [runs[key] for key in sorted(runs)]
