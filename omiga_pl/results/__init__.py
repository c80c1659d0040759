"""Results of sweeps and other runs: rliable tables, plots and marl-eval's metrics.json.
``python -m omiga_pl.results SWEEP_DIR``; see docs/sweeps.md."""

from omiga_pl.results.runs import ResultsError, Run, find_runs

__all__ = ["ResultsError", "Run", "find_runs"]
