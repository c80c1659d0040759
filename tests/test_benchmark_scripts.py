"""The prepared GPU measurement (benchmarks/gpu_rates.py) runs end to end, here on CPU with
a handful of updates, so that the day a GPU is lent it is one command that works. It
measures nothing here: speed figures come from running it, never from a test."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_rates  # noqa: E402


def test_gpu_rates_runs_every_loop_on_cpu(capsys):
    argv = ["--accelerator", "cpu", "--steps", "2", "--warmup", "1", "--ks", "1", "2", "--compile", "none"]
    results = gpu_rates.main([*argv, "--shapes", "Hopper-3x1"])
    loops = results["Hopper-3x1"]
    assert list(loops) == ["single fp32", "single bf16-mixed", "ensemble K=1", "ensemble K=2"]
    assert all(value > 0 for value in loops.values())
    out = capsys.readouterr().out
    assert "[Hopper-3x1] / single fp32: single fp32 1.00x" in out
