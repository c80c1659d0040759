"""The sweep runner: grid expansion and its errors, SLURM submission (with stand-in
sbatch/srun/sacct), a failing cell that does not stop the others, and a sweep killed
mid-cell that resumes without training anything twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from omiga_pl.errors import ConfigError
from omiga_pl.sweep.runner import main
from omiga_pl.sweep.spec import read_sweep

ROOT = Path(__file__).resolve().parent.parent
SMAC = str(ROOT / "conf" / "smac.yaml")


def write_sweep(tmp_path: Path, body: dict, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def grid(tmp_path: Path, data: Path, **extra) -> dict:
    body = {
        "out_dir": str(tmp_path / "sweep"),
        "config": SMAC,
        "overrides": {
            "trainer": {"max_steps": 20},
            "eval": {"every": 10, "episodes": 2, "final_episodes": 4},
        },
        "algorithms": {"omiga": {}, "bc": {}},
        "datasets": {"synth": str(data)},
        "seeds": [0, 1],
    }
    body.update(extra)
    return body


def test_grid_expands_with_layout_order_and_restrictions(tmp_path, smax_3m_file):
    body = grid(
        tmp_path,
        smax_3m_file,
        algorithms={
            "omiga": {},
            "omiga_small": {"algo": "omiga", "overrides": ["algo.alpha=3", "trainer.max_steps=7"]},
            "bc": {"datasets": ["other"]},
        },
        datasets={
            "synth": str(smax_3m_file),
            "other": {"path": str(smax_3m_file), "overrides": {"seed": 99}},
        },
    )
    sweep = read_sweep(write_sweep(tmp_path, body))
    keys = [c.key for c in sweep.cells]
    assert keys == [
        "synth/omiga/seed_0",
        "synth/omiga/seed_1",
        "synth/omiga_small/seed_0",
        "synth/omiga_small/seed_1",
        "other/omiga/seed_0",
        "other/omiga/seed_1",
        "other/omiga_small/seed_0",
        "other/omiga_small/seed_1",
        "other/bc/seed_0",
        "other/bc/seed_1",
    ]
    small = sweep.cells[2].config()
    # The algorithm's overrides beat the shared ones; the cell's own keys beat everything.
    assert small.algo.alpha == 3.0 and small.trainer.max_steps == 7 and small.seed == 0
    assert small.eval.final_episodes == 4 and small.threads == 1
    assert (
        Path(small.log.out_dir) / small.log.run_name
        == tmp_path / "sweep" / "synth" / "omiga_small" / "seed_0"
    )
    assert sweep.cells[8].config().algo.name == "bc"
    # Command-line overrides of the sweep's own keys.
    sweep = read_sweep(write_sweep(tmp_path, body), ["seeds=[5]", "overrides.trainer.max_steps=3"])
    assert [c.seed for c in sweep.cells] == [5] * 5
    assert sweep.cells[0].config().trainer.max_steps == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seeds": []}, "key 'seeds': expected a positive count or a list of distinct non-negative integers"),
        ({"seeds": [1, 1]}, "key 'seeds'"),
        ({"algorithms": {"dqn": {}}}, "key 'algorithms.dqn.algo': expected one of"),
        ({"algorithms": {"omiga": {"algo": "dqn"}}}, "key 'algorithms.omiga.algo': expected one of"),
        (
            {"algorithms": {"omiga": {"datasets": ["nope"]}}},
            "key 'algorithms.omiga.datasets': expected dataset",
        ),
        ({"algorithms": {"omiga": {"colour": 1}}}, "key 'algorithms.omiga.colour': unknown key"),
        ({"algorithms": {"a/b": {}}}, "key 'algorithms.a/b': expected a label"),
        (
            {"datasets": {"x": {"config": "missing.yaml", "path": "x.h5"}}},
            "config file missing.yaml not found",
        ),
        ({"datasets": {"x": {"path": 3}}}, "key 'datasets.x.path': expected a dataset path"),
        ({"colour": "red"}, "key 'colour': unknown key"),
        (
            {"overrides": {"trainer": {"max_steps": -1}}},
            "cell synth/omiga/seed_0: config: key 'trainer.max_steps'",
        ),
        ({"overrides": {"algo": {"nope": 1}}}, "cell synth/omiga/seed_0: command line: key 'algo.nope'"),
        ({"threads": 0}, "key 'threads': expected a positive number"),
    ],
)
def test_bad_sweep_files_fail_before_anything_runs(tmp_path, smax_3m_file, capsys, change, message):
    path = write_sweep(tmp_path, grid(tmp_path, smax_3m_file, **change))
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"omiga_pl.sweep: error: {path}: ") and message in err[0], err
    assert not (tmp_path / "sweep").exists()


def test_missing_sweep_file_and_unknown_override(tmp_path, smax_3m_file, capsys):
    assert main(["--config", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: config file not found" in capsys.readouterr().err
    path = write_sweep(tmp_path, grid(tmp_path, smax_3m_file))
    assert main(["--config", str(path), "trainer.max_steps=3"]) == 2
    assert "unknown sweep key 'trainer'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="key 'seeds': missing"):
        body = grid(tmp_path, smax_3m_file)
        del body["seeds"]
        read_sweep(write_sweep(tmp_path, body))


def fake_slurm(tmp_path: Path, state: str = "RUNNING") -> dict[str, str]:
    """sbatch that records its script and answers like SLURM; srun; sacct reporting ``state``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {tmp_path}/sbatch_script.sh\necho "$@" >> {tmp_path}/sbatch_calls\n'
        'echo "Submitted batch job 4242"\n'
    )
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sacct").write_text(
        f'#!/bin/sh\necho "JobID|State|NodeList"\nfor i in 0 1 2 3; do echo "4242_$i|{state}|node1"; done\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_slurm_submission_is_one_job_array(tmp_path, smax_3m_file):
    env = {**env_for_children(), **fake_slurm(tmp_path)}
    path = write_sweep(tmp_path, grid(tmp_path, smax_3m_file))
    args = ["--executor", "slurm", "--partition", "gpu", "--time", "90", "--gpus-per-node", "1"]
    args += ["--mem-gb", "8", "--array-parallelism", "3", "--setup", "module load cuda", "--no-wait"]

    def sweep(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(sweep_cmd(path, *extra), capture_output=True, text=True, env=env, timeout=300)

    done = sweep(*args)
    assert done.returncode == 1, done.stderr[-3000:]  # submitted, not finished
    assert "submitted 4 jobs to SLURM (job 4242)" in done.stdout
    script = (tmp_path / "sbatch_script.sh").read_text()
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=90",
        "#SBATCH --array=0-3%3",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --mem=8192MB",
        "#SBATCH --job-name=omiga_sweep_grid",
        "module load cuda",
    ):
        assert line in script, line
    assert "submitit.core._submit" in script and "srun" in script
    assert (tmp_path / "sbatch_calls").read_text().count("\n") == 1
    records = sorted((tmp_path / "sweep" / "sweep" / "cells").rglob("*.json"))
    assert len(records) == 4
    assert {json.loads(p.read_text())["slurm_job"] for p in records} == {f"4242_{i}" for i in range(4)}
    # The pickled call of every array task is there for the cluster to run.
    assert len(list((tmp_path / "sweep" / "sweep" / "jobs").rglob("*_submitted.pkl"))) == 4
    # Rerun while SLURM says the jobs run: nothing is submitted again.
    done = sweep(*args)
    assert done.returncode == 1, done.stderr[-3000:]
    assert (tmp_path / "sbatch_calls").read_text().count("\n") == 1
    assert done.stdout.count("still queued or running; not resubmitted") == 4
    # A SLURM sweep needs a time limit.
    done = sweep("--executor", "slurm", "--no-wait")
    assert done.returncode == 2 and "--time: a SLURM sweep needs a time limit" in done.stderr


def sweep_cmd(path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "omiga_pl.sweep", "--config", str(path), *extra]


def env_for_children() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def test_a_failing_cell_is_recorded_and_the_others_finish(tmp_path, smax_3m_file):
    body = grid(
        tmp_path,
        smax_3m_file,
        algorithms={"bc": {}},
        datasets={"synth": str(smax_3m_file), "missing": str(tmp_path / "missing.h5")},
        seeds=[0],
        overrides={"trainer": {"max_steps": 6}, "eval": {"enabled": False}},
    )
    path = write_sweep(tmp_path, body)
    done = subprocess.run(
        sweep_cmd(path, "--workers", "2"), capture_output=True, text=True, env=env_for_children(), timeout=600
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "finished synth/bc/seed_0: 6 updates" in done.stdout  # one line per cell ...
    assert "FAILED missing/bc/seed_0" in done.stdout
    assert "cells: 100%" in done.stderr  # ... under the progress bar
    assert "[sweep] failed: missing/bc/seed_0:" in done.stdout and "missing.h5" in done.stdout
    summary = json.loads((tmp_path / "sweep" / "sweep" / "summary.json").read_text())
    assert summary["counts"] == {"failed": 1, "finished": 1}
    assert [f["key"] for f in summary["failed"]] == ["missing/bc/seed_0"]
    row = next(r for r in summary["rows"] if r["key"] == "synth/bc/seed_0")
    assert row["updates"] == 6 and row["wall_seconds"] > 0 and row["cpu_seconds"] > 0
    assert "missing/bc/seed_0" in (tmp_path / "sweep" / "sweep" / "summary.md").read_text()
    # The run directory is an ordinary fit run with its resolved config.
    assert "max_steps: 6" in (tmp_path / "sweep" / "synth" / "bc" / "seed_0" / "config.yaml").read_text()


@pytest.mark.slow
def test_killed_sweep_resumes_without_training_twice(tmp_path, smax_3m_file):
    """Kill the whole sweep (runner and jobs, SIGKILL) once the second cell has saved a
    checkpoint; the rerun skips the finished cell, resumes the interrupted one from its
    last.ckpt, starts the third, and every record comes out as a straight run's."""
    body = grid(
        tmp_path,
        smax_3m_file,
        algorithms={"bc": {}},
        seeds=[0, 1, 2],
        overrides={
            "trainer": {"max_steps": 30},
            "eval": {"every": 10, "episodes": 2, "final_episodes": 4},
            "log": {"checkpoint_every": 5},
        },
    )
    path = write_sweep(tmp_path, body)
    out = tmp_path / "sweep"
    second = out / "synth" / "bc" / "seed_1" / "checkpoints"
    first_ckpt = out / "synth" / "bc" / "seed_0" / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        sweep_cmd(path, "--workers", "1"),
        env=env_for_children(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 600
        # last.ckpt is written just after step=5.ckpt: wait for both, or a kill in between
        # leaves a cell with no last.ckpt to resume from.
        while not ((second / "step=5.ckpt").exists() and (second / "last.ckpt").exists()):
            assert proc.poll() is None and time.monotonic() < deadline, "sweep ended before the kill"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = torch.load(second / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    assert 5 <= killed_at < 30
    first_bytes = first_ckpt.read_bytes()
    done = subprocess.run(
        sweep_cmd(path), capture_output=True, text=True, env=env_for_children(), timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 cells, 1 finished, 1 to resume, 1 to start" in done.stdout
    cells = out / "sweep" / "cells" / "synth" / "bc"
    first = json.loads((cells / "seed_0.json").read_text())
    resumed = json.loads((cells / "seed_1.json").read_text())
    assert len(first["attempts"]) == 1 and first_ckpt.read_bytes() == first_bytes  # not run again
    assert [a["start_step"] for a in resumed["attempts"]] == [0, killed_at]
    assert resumed["attempts"][0].get("end_step") is None  # the killed attempt never ended
    assert resumed["attempts"][1]["end_step"] == 30 and resumed["attempts"][1]["resumed_from"].endswith(
        "last.ckpt"
    )
    # A straight run of the interrupted cell gives the same records and weights.
    straight = grid(tmp_path, smax_3m_file, algorithms={"bc": {}}, seeds=[1], overrides=body["overrides"])
    straight["out_dir"] = str(tmp_path / "straight")
    spath = write_sweep(tmp_path, straight, "straight.yaml")
    assert (
        subprocess.run(sweep_cmd(spath), capture_output=True, env=env_for_children(), timeout=900).returncode
        == 0
    )

    def records(run_dir: Path):
        lines = [json.loads(x) for x in (run_dir / "eval.jsonl").read_text().splitlines()]
        final = json.loads((run_dir / "final_eval.json").read_text())
        for r in [*lines, final]:
            r.pop("seconds")
        return lines, final

    a, b = out / "synth" / "bc" / "seed_1", tmp_path / "straight" / "synth" / "bc" / "seed_1"
    assert records(a) == records(b)
    assert [r["step"] for r in records(a)[0]] == [10, 20, 30]
    wa = torch.load(a / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    wb = torch.load(b / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_shipped_sweep_files_expand():
    tiny = read_sweep(ROOT / "conf" / "sweep" / "tiny.yaml")
    assert len(tiny.cells) == 8
    snapshot = read_sweep(ROOT / "conf" / "sweep" / "snapshot.yaml")
    algorithms = {"omiga", "omiga_local", "bc", "icq", "cql", "bcq", "omar", "omiga_reference"}
    assert {c.algorithm for c in snapshot.cells} == algorithms
    # 3 SMAX levels x 7 algorithms + 4 Hopper levels x 8 (the reference preset: Hopper only), 3 seeds.
    assert len(snapshot.cells) == (3 * 7 + 4 * 8) * 3
    assert all(c.dataset.startswith("hopper") for c in snapshot.cells if c.algorithm == "omiga_reference")
    assert {c.config().eval.every for c in snapshot.cells} == {1000}


def test_record_directories_made_by_a_neighbour_meanwhile_are_no_error(tmp_path, monkeypatch):
    """Two cells of one algorithm start side by side and write records into the same new
    directory: the one whose ``mkdir`` loses the race must carry on (CI once lost a cell
    this way: 'job died' before the cell ran)."""
    from omiga_pl.io import atomic_output, make_parents

    target = tmp_path / "cells" / "smax" / "bc"
    real_mkdir = Path.mkdir

    def neighbour_first(path: Path, *args, **kwargs) -> None:
        if path == target:
            real_mkdir(path)  # the neighbour's mkdir lands between our check and ours
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", neighbour_first)
    assert make_parents(target) == [tmp_path / "cells", tmp_path / "cells" / "smax"]
    monkeypatch.undo()
    with atomic_output(target / "seed_1.json") as tmp:
        tmp.write_text("{}")
    assert (target / "seed_1.json").read_text() == "{}"


def test_a_job_that_raised_is_recorded_with_its_exception_line(tmp_path):
    """A job body that raises outside the cell's own error handling reaches the record as
    the exception's line, not as the tail of submitit's message (a log path)."""
    import submitit

    from omiga_pl.sweep.dispatch import job_error_text

    def broken() -> None:
        raise ValueError("cells/x/bc: cannot create its directory")

    executor = submitit.LocalExecutor(folder=tmp_path / "jobs" / "%j")
    executor.update_parameters(timeout_min=5)
    job = executor.submit(broken)
    with pytest.raises(Exception) as raised:
        job.result()
    assert job_error_text(raised.value) == "ValueError: cells/x/bc: cannot create its directory"
    no_result = submitit.core.utils.UncompletedJobError(
        "Job 7 (task: 0) with path /x/7_0_result.pkl\nhas not produced any output (state: INTERRUPTED)\n"
        "No output/error stream produced ! Check: /x/7_0_log.out"
    )
    assert job_error_text(no_result) == (
        "Job 7 (task: 0) with path /x/7_0_result.pkl has not produced any output (state: INTERRUPTED)"
    )
    assert job_error_text(KeyboardInterrupt()) == "KeyboardInterrupt"
