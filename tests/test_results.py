"""The results tool on hand-made run directories: scores and rliable aggregates against
hand-computed values, final vs best, marl-eval layout, plots, and errors on bad folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from omiga_pl.results.cli import main
from omiga_pl.results.runs import ResultsError, find_runs
from omiga_pl.results.scores import run_score

# Win flags of the final evaluation (4 episodes) per algorithm, task, seed.
WINS = {
    "omiga": {
        "t1": [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]],
        "t2": [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]],
    },
    "bc": {
        "t1": [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]],
        "t2": [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
    },
}


def make_run(root: Path, env: str, task: str, algo: str, seed: int, final: dict | None, periodic: list[dict]):
    run_dir = root / task / algo / f"seed_{seed}"
    run_dir.mkdir(parents=True)
    config = {
        "seed": seed,
        "data": {"path": f"data/{task}.h5"},
        "algo": {"name": algo},
        "env": {"family": None},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    where = {"env_family": env, "scenario": "x"}
    lines = [json.dumps({"step": r["step"], **where, **r}) for r in periodic]
    (run_dir / "eval.jsonl").write_text("".join(line + "\n" for line in lines))
    if final is not None:
        (run_dir / "final_eval.json").write_text(
            json.dumps({"step": 100, "kind": "absolute_metrics", **where, **final})
        )
    return run_dir


def smax_record(won: list[int], step: int | None = None) -> dict:
    record = {
        "returns": [float(w) * 2.0 for w in won],
        "lengths": [10] * len(won),
        "won": [bool(w) for w in won],
    }
    record["episodes"] = len(won)
    return record if step is None else {"step": step, **record}


@pytest.fixture
def results_dir(tmp_path):
    root = tmp_path / "sweep"
    for algo, tasks in WINS.items():
        for task, seeds in tasks.items():
            for seed, won in enumerate(seeds):
                periodic = [
                    smax_record([1, 1, 1, 1] if algo == "bc" else [0, 0, 0, 0], 50),
                    smax_record(won, 100),
                ]
                make_run(root, "smax", task, algo, seed, smax_record(won), periodic)
    # MaMuJoCo: returns with references (0, 200) -> normalised = returns / 2.
    for seed, returns in enumerate([[100.0, 60.0], [20.0, 40.0], [200.0, 180.0]]):
        final = {
            "returns": returns,
            "lengths": [1000, 1000],
            "reference_returns": [0.0, 200.0],
            "episodes": 2,
        }
        periodic = [{"step": 50, **final, "returns": [10.0, 10.0]}]
        make_run(root, "mamujoco", "hop", "omiga", seed, final, periodic)
    return root


def blocks_of(out: Path) -> dict:
    payload = json.loads((out / "results.json").read_text())
    return {(b["env"], b["metric"], b["which"]): b for b in payload["blocks"]}


def iqm(values) -> float:
    from scipy.stats import trim_mean

    return float(trim_mean(np.asarray(values), 0.25, axis=None))


def test_tables_match_hand_computed_scores(results_dir, tmp_path):
    out = tmp_path / "out"
    assert main([str(results_dir), "--out", str(out), "--which", "both", "--reps", "200"]) == 0
    blocks = blocks_of(out)
    win = blocks[("smax", "win_rate", "final")]
    # Run scores: mean win flag per run. omiga t1 = .75 .5 1, t2 = .25 .5 .75.
    omiga = [0.75, 0.5, 1.0, 0.25, 0.5, 0.75]
    overall = win["overall"]["omiga"]
    assert overall["mean"]["point"] == pytest.approx(np.mean(omiga))
    # IQM over 6 runs: drop the lowest and highest, mean of the middle 4.
    assert overall["IQM"]["point"] == pytest.approx(np.mean(sorted(omiga)[1:-1])) == pytest.approx(iqm(omiga))
    assert overall["median"]["point"] == pytest.approx(np.median([np.mean(omiga[:3]), np.mean(omiga[3:])]))
    assert overall["optimality_gap"]["point"] == pytest.approx(1 - np.mean(omiga))
    assert overall["IQM"]["low"] <= overall["IQM"]["point"] <= overall["IQM"]["high"]
    assert win["per_task"]["t1"]["bc"]["mean"]["point"] == pytest.approx(0.25 / 3)
    assert win["seeds"]["t1"]["omiga"] == [0, 1, 2]
    # Every omiga run beats every bc run on both tasks: P(omiga > bc) = 1, CI [1, 1].
    assert win["probability_of_improvement_of_omiga"]["bc"] == {"point": 1.0, "low": 1.0, "high": 1.0}
    # Best during training: bc's first evaluation won everything.
    best = blocks[("smax", "win_rate", "best")]
    assert best["overall"]["bc"]["mean"]["point"] == pytest.approx(1.0)
    assert best["overall"]["omiga"]["mean"]["point"] == pytest.approx(np.mean(omiga))
    # MaMuJoCo: normalised return = 100 R / 200; runs 40, 15, 95.
    norm = blocks[("mamujoco", "normalized_return", "final")]
    assert norm["overall"]["omiga"]["mean"]["point"] == pytest.approx(50.0)
    assert norm["overall"]["omiga"]["optimality_gap"]["point"] == pytest.approx(50.0)
    assert ("mamujoco", "win_rate", "final") not in blocks  # no win signal there
    ret = blocks[("mamujoco", "return", "final")]
    assert np.isnan(ret["overall"]["omiga"]["optimality_gap"]["point"])
    text = (out / "results.md").read_text()
    assert "IQM of win rate (0-1), final evaluation (absolute_metrics" in text
    assert "best periodic evaluation during training" in text
    assert (
        f"Regenerate: `python -m omiga_pl.results {results_dir} --out {out} --which both --reps 200`" in text
    )
    assert "| omiga | 0.625 [" in text  # headline IQM of omiga on SMAX
    for name in (
        "learning_curves_smax.png",
        "learning_curves_mamujoco.png",
        "performance_profile_smax_final.png",
        "probability_of_improvement_smax_final.png",
        "performance_profile_smax_best.png",
    ):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp file left


def test_final_is_the_default_and_scores_are_per_record(results_dir, tmp_path):
    out = tmp_path / "out"
    assert main([str(results_dir), "--out", str(out), "--no-plots", "--reps", "100"]) == 0
    assert {w for (_, _, w) in blocks_of(out)} == {"final"}
    assert not list(out.glob("*.png"))
    runs = find_runs(results_dir)
    assert len(runs) == 15
    run = next(r for r in runs if r.algorithm == "bc" and r.task == "t1" and r.seed == 1)
    assert run_score(run, "win_rate") == 0.25 and run_score(run, "win_rate", "best") == 1.0
    assert run_score(run, "return") == 0.5


def test_marl_eval_layout(results_dir, tmp_path):
    out = tmp_path / "out"
    assert main([str(results_dir), "--out", str(out), "--no-plots", "--reps", "100"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"smax", "mamujoco"}
    assert set(metrics["smax"]) == {"t1", "t2"} and set(metrics["smax"]["t1"]) == {"omiga", "bc"}
    seed = metrics["smax"]["t1"]["omiga"]["seed_1"]
    assert set(seed) == {"step_0", "step_1", "absolute_metrics"}
    assert seed["step_1"]["step_count"] == 100 and seed["step_0"]["step_count"] == 50
    assert seed["step_1"]["win_rate"] == [1.0, 1.0, 0.0, 0.0]
    assert seed["step_1"]["return"] == [2.0, 2.0, 0.0, 0.0]
    assert seed["absolute_metrics"]["win_rate"] == [1.0, 1.0, 0.0, 0.0]
    assert isinstance(seed["step_0"]["elapsed_time"], float)
    hop = metrics["mamujoco"]["hop"]["omiga"]["seed_0"]["absolute_metrics"]
    assert hop["normalized_return"] == [50.0, 30.0] and hop["return"] == [100.0, 60.0]
    assert "win_rate" not in hop


def test_bad_folders_give_one_line_errors(tmp_path, capsys, results_dir):
    def error(*args) -> str:
        assert main([*map(str, args)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("omiga_pl.results: error: "), lines
        return lines[0]

    assert "not a directory" in error(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    assert "no run directories found" in error(tmp_path / "empty")
    bad = results_dir / "t1" / "bc" / "seed_0" / "eval.jsonl"
    bad.write_text(bad.read_text() + "{oops\n")
    assert f"{bad}: line 3: not JSON" in error(results_dir)
    bad.write_text('{"step": 1}\n')
    assert "line 1: expected an evaluation record with 'step' and per-episode 'returns'" in error(results_dir)
    bad.unlink()
    copy = tmp_path / "sweep" / "again" / "t1" / "bc" / "seed_1"
    copy.mkdir(parents=True)
    for name in ("config.yaml", "final_eval.json"):
        (copy / name).write_bytes((results_dir / "t1" / "bc" / "seed_1" / name).read_bytes())
    with pytest.raises(ResultsError, match="the same run .* keep one"):
        find_runs(results_dir)
    with pytest.raises(SystemExit) as exit_info:
        main([str(results_dir), "--reps", "5"])
    assert exit_info.value.code == 2 and "--reps: expected at least 100" in capsys.readouterr().err
