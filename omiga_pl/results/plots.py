"""PNG plots: learning curves with CI bands, performance profiles, probability of improvement.

Every figure is drawn with matplotlib's Agg backend and written atomically.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from omiga_pl.io import atomic_output
from omiga_pl.results.aggregate import curve_band, score_matrix
from omiga_pl.results.report import REFERENCE, Block, algorithm_order
from omiga_pl.results.runs import Run
from omiga_pl.results.scores import LABELS, PRIMARY, WHICH, curve


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _colours(algorithms: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {algo: cmap(i % 10) for i, algo in enumerate(algorithms)}


def learning_curves(runs: list[Run], env: str, path: Path, reps: int = 500) -> Path | None:
    """One panel per dataset: IQM over seeds of the primary metric at each periodic
    evaluation, with its 95% bootstrap band; one line per algorithm."""
    env_runs = [r for r in runs if r.env == env and r.periodic]
    if not env_runs:
        return None
    metric = PRIMARY.get(env, "return")
    tasks = sorted({r.task for r in env_runs})
    algorithms = algorithm_order(env_runs)
    colours = _colours(algorithm_order(runs))
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    fig.subplots_adjust(hspace=0.45)  # room for each panel's title below the row above
    for ax, task in zip(axes.flat, tasks):
        for algo in algorithms:
            curves = [curve(r, metric) for r in env_runs if r.task == task and r.algorithm == algo]
            curves = [c for c in curves if c[0].size]
            if not curves:
                continue
            steps, iqm, low, high = curve_band(curves, reps=reps)
            if not steps.size:
                continue
            ax.plot(steps, iqm, color=colours[algo], label=algo, lw=1.6)
            ax.fill_between(steps, low, high, color=colours[algo], alpha=0.2, lw=0)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("update")
        ax.set_ylabel(f"IQM {metric}")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    # One legend for the figure: every algorithm drawn in any panel (not only the first's).
    legend: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(
        list(legend.values()),
        list(legend),
        loc="upper center",
        ncol=min(len(legend), 8),
        bbox_to_anchor=(0.5, 1.04),
    )
    fig.suptitle(f"{env}: learning curves (IQM over seeds, 95% CI band; {LABELS[metric]})", y=1.09)
    return _save(fig, path)


def performance_profile(block: Block, runs: list[Run], path: Path, reps: int = 500) -> Path | None:
    """Fraction of runs (over datasets) scoring above tau, with 95% CI bands (rliable)."""
    from rliable import library as rly
    from rliable import plot_utils

    env_runs = [r for r in runs if r.env == block.env]
    common = [t for t in block.tasks if all(a in block.seeds.get(t, {}) for a in block.overall)]
    matrices = {}
    for algo in block.overall:
        matrix, seeds = score_matrix(env_runs, algo, common, block.metric, block.which)
        if seeds:
            matrices[algo] = matrix
    if not matrices:
        return None
    values = np.concatenate([m.ravel() for m in matrices.values()])
    # Thresholds from 0 (or below, for scores under random) to a perfect score or the best run.
    perfect = {"win_rate": 1.0, "normalized_return": 100.0}.get(block.metric, float(values.max()))
    top = max(perfect, float(values.max()))
    low = min(0.0, float(values.min()))
    taus = np.linspace(low, top, 81)
    with warnings.catch_warnings():  # rliable hands arch a RandomState, which arch warns about
        warnings.simplefilter("ignore", FutureWarning)
        profiles, cis = rly.create_performance_profile(matrices, taus, reps=reps)
    colours = _colours(algorithm_order(runs))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    plot_utils.plot_performance_profiles(
        profiles,
        taus,
        performance_profile_cis=cis,
        colors={a: colours[a] for a in matrices},
        xlabel=f"{LABELS[block.metric]} threshold tau",
        ylabel="fraction of runs with score > tau",
        ax=ax,
        labelsize="medium",
        ticklabelsize="small",
    )
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(
        f"{block.env}: performance profile ({WHICH[block.which]}; {len(common)} datasets)", fontsize=10
    )
    return _save(fig, path)


def probability_of_improvement(block: Block, path: Path) -> Path | None:
    """P(OMIGA > baseline) with its 95% CI, one bar per baseline."""
    if not block.improvement:
        return None
    names = list(block.improvement)
    points = np.array([block.improvement[n].point for n in names])
    lows = np.array([block.improvement[n].low for n in names])
    highs = np.array([block.improvement[n].high for n in names])
    fig, ax = plt.subplots(figsize=(6.0, 0.5 + 0.45 * len(names)))
    y = np.arange(len(names))
    ax.barh(y, highs - lows, left=lows, height=0.6, color="tab:blue", alpha=0.35)
    ax.plot(points, y, "|", color="black", markersize=14)
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set_yticks(y, [f"{REFERENCE} > {n}" for n in names])
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability of improvement (95% CI)")
    ax.set_title(f"{block.env}: {LABELS[block.metric]} ({WHICH[block.which]})", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
