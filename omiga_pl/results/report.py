"""The tables: per environment family, metric and record (final / best), the
per-dataset and overall IQM, mean, median and optimality gap with 95% CIs, and the
probability that OMIGA improves on each baseline; rendered as ``results.md``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omiga_pl.results.aggregate import STATS, Estimate, aggregate, probability_of_improvement, score_matrix
from omiga_pl.results.runs import Run
from omiga_pl.results.scores import GAMMA, LABELS, PRIMARY, WHICH, run_metrics

REFERENCE = "omiga"  # probability of improvement of this label over every other


@dataclass
class Block:
    """One environment family x metric x record: every table of that combination."""

    env: str
    metric: str
    which: str
    tasks: list[str]
    algorithms: list[str]
    per_task: dict[str, dict[str, dict[str, Estimate]]] = field(default_factory=dict)
    seeds: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    overall: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    overall_tasks: dict[str, list[str]] = field(default_factory=dict)
    improvement: dict[str, Estimate] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        def est(e: Estimate) -> dict[str, float]:
            return {"point": e.point, "low": e.low, "high": e.high}

        return {
            "env": self.env,
            "metric": self.metric,
            "which": self.which,
            "tasks": self.tasks,
            "per_task": {
                t: {a: {s: est(e) for s, e in stats.items()} for a, stats in by_algo.items()}
                for t, by_algo in self.per_task.items()
            },
            "seeds": self.seeds,
            "overall": {a: {s: est(e) for s, e in stats.items()} for a, stats in self.overall.items()},
            "overall_tasks": self.overall_tasks,
            f"probability_of_improvement_of_{REFERENCE}": {a: est(e) for a, e in self.improvement.items()},
        }


def algorithm_order(runs: list[Run]) -> list[str]:
    """OMIGA first, then the rest in name order."""
    names = sorted({r.algorithm for r in runs})
    return sorted(names, key=lambda a: (a != REFERENCE, a))


def build_blocks(runs: list[Run], which: str, reps: int = 2000) -> list[Block]:
    blocks = []
    for env in sorted({r.env for r in runs}):
        env_runs = [r for r in runs if r.env == env]
        tasks = sorted({r.task for r in env_runs})
        algorithms = algorithm_order(env_runs)
        metrics = run_metrics(env_runs[0])
        for metric in metrics:
            block = Block(env, metric, which, tasks, algorithms)
            gamma = GAMMA[metric]
            for task in tasks:
                matrices = {}
                for algo in algorithms:
                    matrix, seeds = score_matrix(env_runs, algo, [task], metric, which)
                    if seeds:
                        matrices[algo] = matrix
                        block.seeds.setdefault(task, {})[algo] = seeds
                block.per_task[task] = aggregate(matrices, gamma, reps)
            overall = {}
            for algo in algorithms:
                own = [t for t in tasks if algo in block.seeds.get(t, {})]
                matrix, seeds = score_matrix(env_runs, algo, own, metric, which)
                if seeds:
                    overall[algo] = matrix
                    block.overall_tasks[algo] = own
            block.overall = aggregate(overall, gamma, reps)
            if REFERENCE in overall:
                for algo in algorithms:
                    if algo == REFERENCE or algo not in overall:
                        continue
                    common = [t for t in block.overall_tasks[REFERENCE] if t in block.overall_tasks[algo]]
                    x, _ = score_matrix(env_runs, REFERENCE, common, metric, which)
                    y, _ = score_matrix(env_runs, algo, common, metric, which)
                    if x.size and y.size:
                        block.improvement[algo] = probability_of_improvement(x, y, reps)
            blocks.append(block)
    return blocks


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def headline(blocks: list[Block]) -> list[str]:
    """IQM [95% CI] of each family's primary metric, algorithms x datasets (+ overall)."""
    lines = []
    for block in blocks:
        if block.metric != PRIMARY.get(block.env, "return"):
            continue
        lines += [
            f"**{block.env}: IQM of {LABELS[block.metric]}, {WHICH[block.which]}, 95% stratified "
            "bootstrap CI over seeds**",
            "",
            _row(["algorithm", *block.tasks, "overall"]),
            _row(["---"] * (len(block.tasks) + 2)),
        ]
        for algo in block.algorithms:
            cells = [
                block.per_task[t][algo]["IQM"].text() if algo in block.per_task[t] else ""
                for t in block.tasks
            ]
            overall = block.overall.get(algo)
            cells.append(overall["IQM"].text() if overall else "")
            lines.append(_row([algo, *cells]))
        lines.append("")
    return lines


def block_markdown(block: Block) -> list[str]:
    title = f"### {block.env}: {LABELS[block.metric]} ({WHICH[block.which]})"
    lines = [title, ""]
    gap = "" if GAMMA[block.metric] is not None else " (no optimality gap: return has no natural maximum)"
    lines += [
        f"Overall, over each algorithm's datasets{gap}. Point estimate [95% stratified bootstrap CI].",
        "",
        _row(["algorithm", *STATS, "datasets", "seeds"]),
        _row(["---"] * (len(STATS) + 3)),
    ]
    for algo in block.algorithms:
        if algo not in block.overall:
            continue
        tasks = block.overall_tasks[algo]
        seeds = len(block.seeds[tasks[0]][algo]) if tasks else 0
        lines.append(
            _row([algo, *(block.overall[algo][s].text() for s in STATS), str(len(tasks)), str(seeds)])
        )
    if block.improvement:
        lines += [
            "",
            f"Probability of improvement of {REFERENCE} over each baseline (P({REFERENCE} > baseline) on "
            "a random common dataset; 0.5 = no difference) [95% CI]:",
            "",
            _row(["baseline", f"P({REFERENCE} > baseline)"]),
            _row(["---", "---"]),
        ]
        lines += [_row([algo, est.text()]) for algo, est in block.improvement.items()]
    for task in block.tasks:
        lines += [
            "",
            f"Dataset `{task}`:",
            "",
            _row(["algorithm", *STATS, "seeds"]),
            _row(["---"] * (len(STATS) + 2)),
        ]
        for algo, stats in block.per_task[task].items():
            seeds = ", ".join(str(s) for s in block.seeds[task][algo])
            lines.append(_row([algo, *(stats[s].text() for s in STATS), seeds]))
    return [*lines, ""]


def markdown(blocks: list[Block], runs: list[Run], command: str, reps: int, cost: list[str]) -> str:
    which = sorted({b.which for b in blocks}, key=list(WHICH).index)
    finals = [r.final["episodes"] for r in runs if r.final]
    lines = [
        "# Results",
        "",
        f"Regenerate: `{command}`.",
        "",
        f"{len(runs)} runs. Scores per run: the mean over the evaluation's episodes; "
        + ", ".join(f"**{w}** = {WHICH[w]}" for w in which)
        + (f" ({min(finals)}-{max(finals)} episodes per final evaluation)" if finals else "")
        + f". Aggregates by rliable: IQM (25% trimmed mean over runs x datasets), mean, median "
        f"(of per-dataset means), optimality gap (how far below a perfect score on average), 95% "
        f"stratified bootstrap CIs from {reps} resamples.",
        "",
        "## Headline",
        "",
        *headline([b for b in blocks if b.which == which[0]]),
    ]
    for w in which:
        lines += [f"## {WHICH[w].capitalize()}", ""]
        for block in blocks:
            if block.which == w:
                lines += block_markdown(block)
    if cost:
        lines += ["## Cost", "", *cost, ""]
    missing = [r for r in runs if r.final is None]
    if missing and "final" in which:
        lines += [
            "## Runs without a final evaluation (left out of final tables)",
            "",
            *[f"- `{r.run_dir}`" for r in missing],
            "",
        ]
    return "\n".join(lines)
