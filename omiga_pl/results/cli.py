"""Tables and plots of a sweep: ``python -m omiga_pl.results SWEEP_DIR [--out DIR] [--which ...]``.

Finds every run directory under SWEEP_DIR (config.yaml + evaluation records), scores
each run (win rate for SMAX, normalised return for MaMuJoCo, and return), aggregates
with rliable and writes, each file atomically, into ``--out`` (default
``SWEEP_DIR/results``): ``results.md``, ``results.json`` (every number of the tables),
``metrics.json`` (marl-eval layout) and PNG plots.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from omiga_pl.cli import parser_named
from omiga_pl.errors import OmigaError, one_line
from omiga_pl.io import atomic_output
from omiga_pl.results import plots
from omiga_pl.results.marl_eval import marl_eval_layout
from omiga_pl.results.report import build_blocks, markdown
from omiga_pl.results.runs import ResultsError, Run, find_runs
from omiga_pl.results.scores import PRIMARY


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = parser_named("omiga_pl.results")(
        prog="python -m omiga_pl.results", description=__doc__.splitlines()[0]
    )
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a sweep directory or any folder of runs")
    parser.add_argument("--out", help="output directory (default SWEEP_DIR/results)")
    parser.add_argument(
        "--which",
        choices=("final", "best", "both"),
        default="final",
        help="which evaluation the tables show: the final one (default), the best during training, or both",
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--no-plots", action="store_true", help="tables and metrics.json only")
    args = parser.parse_args(argv)
    if args.reps < 100:
        parser.error(f"argument --reps: expected at least 100 resamples, found {args.reps}")
    return args


def cost_lines(root: Path) -> list[str]:
    """What the sweep cost, from the runner's summary (if this is a sweep directory)."""
    path = root / "sweep" / "summary.json"
    if not path.is_file():
        return []
    try:
        summary = json.loads(path.read_text())
    except ValueError as error:
        raise ResultsError(f"{path}: not JSON ({error})") from None
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.get("counts", {}).items()))
    return [
        f"{summary.get('cells')} cells ({counts}); {summary.get('wall_seconds', 0):.0f} s wall summed over "
        f"cells, {summary.get('cpu_seconds', 0):.0f} s CPU (the runner's `sweep/summary.md` has every cell)."
    ]


def write_results(
    root: Path, out: Path, runs: list[Run], which: str, reps: int, draw: bool, command: str = ""
) -> list[Path]:
    """Everything into ``out``; returns the files written. ``command``: how to regenerate them."""
    kinds = ["final", "best"] if which == "both" else [which]
    blocks = [block for kind in kinds for block in build_blocks(runs, kind, reps)]
    usable = [b for b in blocks if b.overall]
    if not usable:
        raise ResultsError(
            f"{root}: no run has a {' or '.join(kinds)} evaluation to score (runs still training, or "
            "eval.final_episodes=0: try --which best)"
        )
    written = []
    command = command or f"python -m omiga_pl.results {shlex.quote(str(root))} --which {which} --reps {reps}"
    text = markdown(blocks, runs, command, reps, cost_lines(root))
    payload: dict[str, Any] = {"runs": len(runs), "blocks": [b.as_dict() for b in blocks]}
    for name, content in (
        ("results.md", text),
        ("results.json", json.dumps(payload, indent=1) + "\n"),
        ("metrics.json", json.dumps(marl_eval_layout(runs)) + "\n"),
    ):
        with atomic_output(out / name, overwrite=True) as tmp:
            tmp.write_text(content)
        written.append(out / name)
    if draw:
        for env in sorted({r.env for r in runs}):
            path = plots.learning_curves(runs, env, out / f"learning_curves_{env}.png")
            written += [path] if path else []
        for block in blocks:
            if block.metric != PRIMARY.get(block.env, "return") or not block.overall:
                continue
            stem = f"{block.env}_{block.which}"
            for path in (
                plots.performance_profile(block, runs, out / f"performance_profile_{stem}.png"),
                plots.probability_of_improvement(block, out / f"probability_of_improvement_{stem}.png"),
            ):
                written += [path] if path else []
    return written


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        root = Path(args.sweep_dir)
        runs = find_runs(root)
        out = Path(args.out) if args.out else root / "results"
        given = sys.argv[1:] if argv is None else argv
        command = "python -m omiga_pl.results " + shlex.join(given)
        written = write_results(root, out, runs, args.which, args.reps, not args.no_plots, command)
    except OmigaError as error:
        print(f"omiga_pl.results: error: {one_line(error)}", file=sys.stderr)
        return 2
    print(f"[results] {len(runs)} runs -> {out}: " + ", ".join(p.name for p in written), flush=True)
    return 0
