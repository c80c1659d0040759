"""Sweeps: a grid of algorithms x datasets x seeds, each cell an ordinary fit run,
dispatched through submitit (local processes or SLURM). See docs/sweeps.md."""

from omiga_pl.sweep.spec import Cell, Sweep, read_sweep

__all__ = ["Cell", "Sweep", "read_sweep"]
