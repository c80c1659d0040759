"""``metrics.json`` in marl-eval's raw-data layout, so results load into marl-eval next to OG-MARL's::

    {env: {task: {algorithm: {"seed_<n>": {
        "step_<i>": {"step_count": <update>, "elapsed_time": <s>, "<metric>": [per-episode values]},
        ...,
        "absolute_metrics": {"<metric>": [per-episode values of the final evaluation]}}}}}}

``step_<i>`` numbers the periodic evaluations 0, 1, ...; ``step_count`` is the update
after which it ran; ``elapsed_time`` is the wall-clock seconds since the run's first
TensorBoard event at that evaluation (0 when the run has no events; a resumed run's
includes the time it was stopped). Metrics: ``return`` always, ``win_rate`` (0/1 per
episode) where there is a win signal, ``normalized_return`` where the card gives
reference returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omiga_pl.results.runs import Run
from omiga_pl.results.scores import episode_values, run_metrics


def event_times(run_dir: Path) -> dict[int, float]:
    """Update -> seconds since the run's first event, from its ``eval/return_mean`` scalars."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return {}
    if not any(run_dir.glob("events.out.tfevents.*")):
        return {}
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags().get("scalars", [])
    if "eval/return_mean" not in tags:
        return {}
    first = min(events.Scalars(tag)[0].wall_time for tag in tags if events.Scalars(tag))
    return {e.step: e.wall_time - first for e in events.Scalars("eval/return_mean")}


def _values(record: dict[str, Any], metrics: list[str]) -> dict[str, list[float]]:
    return {m: [float(v) for v in episode_values(record, m)] for m in metrics}  # type: ignore[union-attr]


def run_entry(run: Run) -> dict[str, Any]:
    metrics = run_metrics(run)
    times = event_times(run.run_dir)
    entry: dict[str, Any] = {}
    for index, record in enumerate(run.periodic):
        entry[f"step_{index}"] = {
            "step_count": int(record["step"]),
            "elapsed_time": float(times.get(int(record["step"]), 0.0)),
            **_values(record, metrics),
        }
    if run.final is not None:
        entry["absolute_metrics"] = _values(run.final, metrics)
    return entry


def marl_eval_layout(runs: list[Run]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for run in runs:
        out.setdefault(run.env, {}).setdefault(run.task, {}).setdefault(run.algorithm, {})[
            f"seed_{run.seed}"
        ] = run_entry(run)
    return out
