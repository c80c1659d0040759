"""Sweep cells that differ only in seed, packed into one seed-ensemble job
(omiga_pl/ensemble_sweep.py): each cell keeps its run directory and its record, and the
results tool finds the members like any other runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from omiga_pl.ensemble_sweep import group_key, should_pack
from omiga_pl.results.runs import find_runs
from omiga_pl.sweep.dispatch import ExecutorOptions, make_tasks
from omiga_pl.sweep.runner import main
from omiga_pl.sweep.spec import read_sweep

ROOT = Path(__file__).resolve().parent.parent
SMAC = str(ROOT / "conf" / "smac.yaml")


def sweep_file(tmp_path: Path, data: Path, algorithms: tuple[str, ...] = ("omiga", "cql")) -> Path:
    body = {
        "out_dir": str(tmp_path / "sweep"),
        "config": SMAC,
        "overrides": {
            "trainer": {"max_steps": 12},
            "eval": {"every": 6, "episodes": 2, "final_episodes": 2},
            "log": {"checkpoint_every": 6, "log_every": 3},
            "algo": {"hidden_sizes": [16, 16]},
        },
        "algorithms": {name: {} for name in algorithms},
        "datasets": {"synth": str(data)},
        "seeds": [0, 1, 2],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_packing_groups_the_seeds_of_each_algorithm(tmp_path, smax_3m_file):
    sweep = read_sweep(sweep_file(tmp_path, smax_3m_file))
    by_algorithm = {cell.algorithm: group_key(cell) for cell in sweep.cells}
    assert len({group_key(c) for c in sweep.cells}) == 2 == len(by_algorithm)
    config = sweep.cells[0].config()
    assert should_pack(config, "always") and not should_pack(config, "never")
    assert not should_pack(config, "auto")  # trainer.accelerator=cpu: side by side is faster
    tasks = make_tasks(sweep, sweep.cells, ExecutorOptions(pack_seeds="always"))
    sizes = sorted(len(task.cells) for task in tasks)
    # omiga's three seeds in one job, cql's in another (its training noise is replayed per member).
    assert sizes == [3, 3]
    assert {tuple(c.algorithm for c in task.cells) for task in tasks} == {("omiga",) * 3, ("cql",) * 3}
    assert [len(t.cells) for t in make_tasks(sweep, sweep.cells, ExecutorOptions())] == [1] * 6


@pytest.mark.slow
def test_a_packed_sweep_writes_every_cell_and_its_record(tmp_path, smax_3m_file):
    path = sweep_file(tmp_path, smax_3m_file, algorithms=("omiga",))
    command = ["--config", str(path), "--workers", "1", "--pack-seeds", "always"]
    assert main(command) == 0
    out = tmp_path / "sweep"
    summary = json.loads((out / "sweep" / "summary.json").read_text())
    omiga = [row for row in summary["rows"] if row["key"].startswith("synth/omiga/")]
    assert len(omiga) == 3 and all(row["status"] == "finished" and row["updates"] == 12 for row in omiga)
    for seed in (0, 1, 2):
        record = json.loads((out / "sweep" / "cells" / "synth" / "omiga" / f"seed_{seed}.json").read_text())
        assert record["ensemble_dir"] == str(out / "synth" / "omiga")
        assert record["final"]["episodes"] == 2 and record["last_eval"]["step"] == 12
    runs = [run for run in find_runs(out) if run.algorithm == "omiga"]
    assert sorted(run.seed for run in runs) == [0, 1, 2]
    # A second invocation finds them finished and trains nothing.
    assert main(command) == 0
    again = json.loads((out / "sweep" / "cells" / "synth" / "omiga" / "seed_1.json").read_text())
    assert len(again["attempts"]) == 1
