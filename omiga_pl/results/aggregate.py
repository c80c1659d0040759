"""rliable statistics over score matrices [runs, tasks]: IQM, mean, median, optimality
gap and probability of improvement, with stratified bootstrap 95% confidence intervals.

Stratified bootstrap (rliable): runs are resampled with replacement within each task,
so every task keeps its weight. A matrix needs the same runs (seeds) on every task; a
seed missing on one task is dropped from all (:func:`score_matrix` says which seeds it kept).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rliable import library as rly
from rliable import metrics

from omiga_pl.results.runs import Run
from omiga_pl.results.scores import run_score

STATS = ("IQM", "mean", "median", "optimality_gap")


def _quietly(fn: Callable[..., object]) -> Callable[..., object]:
    """rliable passes a RandomState to arch, which arch now warns about (same numbers)."""

    def wrapper(*args: object, **kwargs: object) -> object:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
            return fn(*args, **kwargs)

    return wrapper


_interval_estimates = _quietly(rly.get_interval_estimates)


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95% interval."""

    point: float
    low: float
    high: float

    def text(self, digits: int = 3) -> str:
        if np.isnan(self.point):
            return "n/a"
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def score_matrix(
    runs: list[Run], algorithm: str, tasks: list[str], metric: str, which: str
) -> tuple[np.ndarray, list[int]]:
    """[R, T] scores of ``algorithm`` on ``tasks`` (columns in that order) over the seeds
    that have a score on every task (rows sorted by seed); returns (matrix, seeds)."""
    by_task: dict[str, dict[int, float]] = {task: {} for task in tasks}
    for run in runs:
        if run.algorithm == algorithm and run.task in by_task:
            score = run_score(run, metric, which)
            if score is not None:
                by_task[run.task][run.seed] = score
    seeds = sorted(set.intersection(*(set(scores) for scores in by_task.values()))) if tasks else []
    matrix = np.array([[by_task[task][seed] for task in tasks] for seed in seeds], dtype=np.float64)
    return matrix.reshape(len(seeds), len(tasks)), seeds


def _stats_fn(gamma: float | None) -> Callable[[np.ndarray], np.ndarray]:
    def fn(scores: np.ndarray) -> np.ndarray:
        gap = np.nan if gamma is None else metrics.aggregate_optimality_gap(scores, gamma)
        return np.array(
            [
                metrics.aggregate_iqm(scores),
                metrics.aggregate_mean(scores),
                metrics.aggregate_median(scores),
                gap,
            ]
        )

    return fn


def aggregate(
    matrices: dict[str, np.ndarray], gamma: float | None, reps: int = 2000, seed: int = 0
) -> dict[str, dict[str, Estimate]]:
    """Per algorithm: IQM, mean, median, optimality gap (NaN without ``gamma``), each with
    a stratified bootstrap 95% CI over ``reps`` resamples (seeded: the same numbers every time)."""
    out: dict[str, dict[str, Estimate]] = {}
    for algorithm, matrix in matrices.items():
        if matrix.size == 0:
            continue
        points, intervals = _interval_estimates(
            {algorithm: matrix}, _stats_fn(gamma), reps=reps, random_state=np.random.RandomState(seed)
        )
        point, interval = points[algorithm], intervals[algorithm]
        out[algorithm] = {
            stat: Estimate(float(point[i]), float(interval[0, i]), float(interval[1, i]))
            for i, stat in enumerate(STATS)
        }
    return out


def probability_of_improvement(x: np.ndarray, y: np.ndarray, reps: int = 2000, seed: int = 0) -> Estimate:
    """P(X > Y): the probability that a run of X scores above a run of Y on a random task
    (Mann-Whitney U statistic, averaged over tasks), with its stratified bootstrap 95% CI.
    ``x`` [Rx, T] and ``y`` [Ry, T] share the same task columns."""
    points, intervals = _interval_estimates(
        {"pair": [x, y]},
        lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
        reps=reps,
        random_state=np.random.RandomState(seed),
    )
    return Estimate(float(points["pair"][0]), float(intervals["pair"][0, 0]), float(intervals["pair"][1, 0]))


def curve_band(
    steps_scores: list[tuple[np.ndarray, np.ndarray]], reps: int = 500, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IQM over runs at each evaluation step common to all runs, with a 95% CI.

    ``steps_scores``: per run (steps [K], scores [K]). Returns (steps [S], iqm [S],
    low [S], high [S]).
    """
    common = sorted(set.intersection(*(set(s.tolist()) for s, _ in steps_scores)))
    if not common:
        empty = np.array([])
        return empty, empty, empty, empty
    rows = []
    for steps, scores in steps_scores:
        lookup = dict(zip(steps.tolist(), scores.tolist()))
        rows.append([lookup[s] for s in common])
    data = np.array(rows, dtype=np.float64)[:, None, :]  # [R, 1 task, S]

    def iqm_per_step(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x[..., i]) for i in range(x.shape[-1])])

    points, intervals = _interval_estimates(
        {"curve": data}, iqm_per_step, reps=reps, random_state=np.random.RandomState(seed)
    )
    return np.array(common), points["curve"], intervals["curve"][0], intervals["curve"][1]
