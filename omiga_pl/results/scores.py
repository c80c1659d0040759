"""Scores of a run, from its per-episode evaluation values.

Metrics (per episode, then averaged over a record's episodes to give a run's score):

* ``return``: the undiscounted episode return (every environment);
* ``win_rate``: 1 if the episode was won, else 0 (SMAX; environments with a win signal);
* ``normalized_return``: ``100 (R - random) / (expert - random)`` with the dataset
  card's reference returns (MaMuJoCo; any record that carries ``reference_returns``).

Which record: ``final`` (the final, absolute_metrics evaluation: the default) or
``best`` (the best periodic evaluation during training, by the run's mean score; an
optimistic number, since the best of several noisy evaluations is biased upward).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from omiga_pl.results.runs import Run

METRICS = ("win_rate", "normalized_return", "return")
# The score each environment family is compared on (the others are reported too).
PRIMARY = {"smax": "win_rate", "mamujoco": "normalized_return"}
# Optimality-gap threshold: the score of a perfect run (None: no natural one).
GAMMA = {"win_rate": 1.0, "normalized_return": 100.0, "return": None}
LABELS = {
    "win_rate": "win rate (0-1)",
    "normalized_return": "normalised return (0 = random, 100 = the card's expert)",
    "return": "episode return",
}
WHICH = {
    "final": "final evaluation (absolute_metrics, after the last update)",
    "best": "best periodic evaluation during training (optimistic)",
}


def episode_values(record: dict[str, Any], metric: str) -> np.ndarray | None:
    """[E] per-episode values of ``metric`` in one record, or None if it lacks them."""
    returns = np.asarray(record.get("returns", []), dtype=np.float64)
    if metric == "return":
        return returns
    if metric == "win_rate":
        won = record.get("won")
        return None if won is None else np.asarray(won, dtype=np.float64)
    if metric == "normalized_return":
        reference = record.get("reference_returns")
        if reference is None:
            return None
        low, high = reference
        return 100.0 * (returns - low) / (high - low)
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def record_score(record: dict[str, Any], metric: str) -> float | None:
    values = episode_values(record, metric)
    return None if values is None or values.size == 0 else float(values.mean())


def run_metrics(run: Run) -> list[str]:
    """The metrics this run's records support, primary first."""
    record = run.final or (run.periodic[0] if run.periodic else {})
    found = [m for m in METRICS if episode_values(record, m) is not None]
    primary = PRIMARY.get(run.env)
    return sorted(found, key=lambda m: (m != primary, METRICS.index(m)))


def run_score(run: Run, metric: str, which: str = "final") -> float | None:
    """The run's score: its final record's, or its best periodic one's (None if absent)."""
    if which == "final":
        return None if run.final is None else record_score(run.final, metric)
    if which == "best":
        scores = [s for s in (record_score(r, metric) for r in run.periodic) if s is not None]
        return max(scores) if scores else None
    raise ValueError(f"unknown record {which!r}; expected one of {list(WHICH)}")


def curve(run: Run, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps [K], scores [K]) of the run's periodic evaluations."""
    points = [(r["step"], record_score(r, metric)) for r in run.periodic]
    points = [(s, v) for s, v in points if v is not None]
    return np.array([p[0] for p in points], dtype=np.int64), np.array([p[1] for p in points])
