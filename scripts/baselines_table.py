"""Train every registered algorithm on the bundled default datasets and print the table.

Cells are ordinary ``python -m omiga_pl.fit`` runs (one torch thread each, ``--jobs`` side
by side) in ``OUT/<algo>_<dataset>_s<seed>/``; a finished cell is skipped and an
interrupted one resumes from its ``last.ckpt``, so the command can be rerun after a stop.
The table shows the *final* evaluation of each run (mean ± std over seeds), and the mean
of its second half of evaluations (less noisy), beside the behaviour policy that produced
the data (from the dataset card).

    python scripts/baselines_table.py --out runs/baselines --seeds 0 1 2 --jobs 2
    python scripts/baselines_table.py --out runs/baselines --table-only     # aggregate only
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omiga_pl.algos import ALGORITHMS  # noqa: E402
from omiga_pl.data.formats.native import read_card  # noqa: E402

# label: (task config, dataset, action type, metrics shown)
DATASETS = {
    "smax_3m_medium": (
        "conf/smac.yaml",
        "data/smax_3m_medium.h5",
        "discrete",
        ("win_rate", "return_mean"),
    ),
    "hopper_3x1_medium_replay": (
        "conf/mamujoco.yaml",
        "data/mamujoco_hopper_3x1_medium_replay.h5",
        "continuous",
        ("return_mean", "normalized_score"),
    ),
}


def cell_command(
    out: Path, run: str, config: str, data: str, algo: str, seed: int, extra: list[str]
) -> list[str]:
    """The fit command of one cell: a fresh run, or a resume of its own last checkpoint."""
    last = out / run / "checkpoints" / "last.ckpt"
    common = ["threads=1", "trainer.enable_progress_bar=false", *extra]
    if last.is_file():
        return [sys.executable, "-m", "omiga_pl.fit", "--resume", str(last), *common]
    return [
        sys.executable,
        "-m",
        "omiga_pl.fit",
        "--config",
        str(ROOT / config),
        f"data.path={ROOT / data}",
        f"algo.name={algo}",
        f"seed={seed}",
        f"log.out_dir={out}",
        f"log.run_name={run}",
        *common,
    ]


def finished(out: Path, run: str) -> bool:
    """A cell is done when its last checkpoint holds every update it was asked for."""
    last = out / run / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return False
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    return checkpoint["global_step"] >= checkpoint["omiga_pl_config"]["trainer"]["max_steps"]


def run_cell(out: Path, run: str, command: list[str]) -> tuple[str, int, float]:
    start = time.perf_counter()
    with open(out / f"{run}.log", "a") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return run, code, time.perf_counter() - start


def evaluations(out: Path, run: str) -> list[dict]:
    """Every evaluation of a run, in order (empty if it has none yet)."""
    path = out / run / "eval.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def late_mean(evals: list[dict], metric: str) -> float:
    """Mean of ``metric`` over the second half of a run's evaluations: one evaluation of a
    few episodes is noisy (32 SMAX episodes: a win rate's standard error is about 0.09)."""
    late = evals[len(evals) // 2 :]
    return statistics.mean(e[metric] for e in late)


def fmt(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def table(out: Path, algos: list[str], seeds: list[int], datasets: list[str]) -> str:
    lines = []
    for label in datasets:
        _, data, action_type, metrics = DATASETS[label]
        card = read_card(ROOT / data)
        lines += [f"\n**{label}** (final evaluation; mean ± std over seeds {seeds})", ""]
        late = f"{metrics[0]}, mean of the 2nd half of evaluations"
        lines += [
            "| algorithm | " + " | ".join(metrics) + f" | {late} | seeds done |",
            "|---" * (len(metrics) + 3) + "|",
        ]
        behaviour = {"win_rate": card.get("win_rate"), "return_mean": card.get("return_mean")}
        refs = card.get("reference_returns") or {}
        if "random" in refs and "expert" in refs:
            span = refs["expert"] - refs["random"]
            behaviour["normalized_score"] = 100 * (card["return_mean"] - refs["random"]) / span
        cells = [fmt([behaviour[m]]) if behaviour.get(m) is not None else "—" for m in metrics]
        lines.append("| dataset behaviour | " + " | ".join(cells) + " | — | — |")
        for algo in algos:
            if action_type not in ALGORITHMS[algo].action_types:
                continue
            runs = [evaluations(out, f"{algo}_{label}_s{seed}") for seed in seeds]
            done = [r for r in runs if r]
            cells = [fmt([r[-1][m] for r in done if m in r[-1]]) for m in metrics]
            cells.append(fmt([late_mean(r, metrics[0]) for r in done]))
            lines.append(f"| {algo} | " + " | ".join(cells) + f" | {len(done)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "baselines")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--jobs", type=int, default=2, help="cells run side by side (one thread each)")
    parser.add_argument("--algos", nargs="+", default=list(ALGORITHMS))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--table-only", action="store_true", help="aggregate what is there, train nothing")
    parser.add_argument(
        "extra", nargs="*", help="key=value overrides for every cell (e.g. trainer.max_steps=5000)"
    )
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        todo = []
        for label in args.datasets:
            config, data, action_type, _ = DATASETS[label]
            for algo in args.algos:
                if action_type not in ALGORITHMS[algo].action_types:
                    continue
                for seed in args.seeds:
                    run = f"{algo}_{label}_s{seed}"
                    if finished(out, run):
                        print(f"[skip] {run}: finished", flush=True)
                        continue
                    todo.append((run, cell_command(out, run, config, data, algo, seed, args.extra)))
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for run, code, seconds in pool.map(lambda job: run_cell(out, *job), todo):
                status = "ok" if code == 0 else f"FAILED (exit {code}, see {out / run}.log)"
                print(f"[cell] {run}: {status} in {seconds:.0f}s", flush=True)
        print(f"[sweep] {len(todo)} cells in {time.perf_counter() - start:.0f}s wall", flush=True)
    print(table(out, args.algos, args.seeds, args.datasets))


if __name__ == "__main__":
    main()
