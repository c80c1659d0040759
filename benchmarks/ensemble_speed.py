"""Aggregate seed-updates/s: K seeds as one ensemble process against K separate runs.

* **ensemble**: one process trains K members (omiga_pl/ensemble.py) through the
  Lightning fit loop with ``--threads`` threads; seed-updates/s = K x updates/s.
* **separate**: K single-seed runs as separate processes, ``--side-by-side`` at a time
  with ``--threads / side-by-side`` threads each (on 2 cores: two 1-thread runs);
  seed-updates/s = K x updates / wall time of all K.

Both use the same synthetic dataset at the chosen shape, the same number of timed
updates (after a warm-up that is not timed) and the whole machine; the figures are
printed with the machine's load, which on shared cores is the main source of noise.

    python benchmarks/ensemble_speed.py --shape 5m_vs_6m --ks 1 4 8 16 --steps 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import build_module, lightning_loop, machine_summary  # noqa: E402
from throughput import SHAPES, synthetic_file  # noqa: E402

from omiga_pl.data.datamodule import OfflineMARLDataModule  # noqa: E402
from omiga_pl.ensemble import EnsembleDataModule, EnsembleModule  # noqa: E402


def ensemble_rate(path: Path, algo: str, k: int, steps: int, warmup: int) -> float:
    """Updates/s of a K-member ensemble in the fit loop (each update trains K seeds)."""
    seeds = list(range(k))
    datamodule = EnsembleDataModule(path, batch_size=128, seeds=seeds)
    members = [build_module(datamodule, algo, seed=seed) for seed in seeds]
    return lightning_loop(EnsembleModule(members, seeds), datamodule, steps, warmup)


def single_rate(path: Path, algo: str, seed: int, steps: int, warmup: int) -> float:
    datamodule = OfflineMARLDataModule(path, batch_size=128, seed=seed)
    return lightning_loop(build_module(datamodule, algo, seed=seed), datamodule, steps, warmup)


def separate_runs(
    path: Path, algo: str, k: int, steps: int, warmup: int, side: int, threads: int
) -> tuple[float, float]:
    """K single-seed processes, ``side`` at a time: seed-updates/s in steady state (``side``
    x the median of the runs' own timed rates) and over the wall time of all K (which also
    pays each process's start-up and warm-up, as a sweep would)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start, pending, running, rates = time.perf_counter(), list(range(k)), [], []
    while pending or running:
        while pending and len(running) < side:
            seed = pending.pop(0)
            cmd = [sys.executable, __file__, "--worker", str(path), algo, str(seed), str(steps), str(warmup)]
            running.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        out, _ = running[0].communicate()
        rates.append(float(out.decode().strip().splitlines()[-1]))
        running = running[1:]
    wall = time.perf_counter() - start
    return min(side, k) * statistics.median(rates), k * steps / wall


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        path, algo, seed, steps, warmup = sys.argv[2:7]
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        print(json.dumps(single_rate(Path(path), algo, int(seed), int(steps), int(warmup))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="5m_vs_6m", choices=list(SHAPES))
    parser.add_argument("--algo", default="omiga")
    parser.add_argument("--ks", type=int, nargs="*", default=[1, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--side-by-side", type=int, default=2)
    parser.add_argument("--no-separate", action="store_true", help="time only the ensembles")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_summary())
    per_run_threads = max(1, args.threads // args.side_by_side)
    with tempfile.TemporaryDirectory() as tmp:
        path = synthetic_file(Path(tmp), args.shape, episodes=300)
        tag = f"[{args.shape}/{args.algo}]"
        separate = None
        if not args.no_separate:
            # Steady-state seed-updates/s of separate runs does not depend on K: measured
            # once, with as many runs as run side by side.
            side = args.side_by_side
            separate, wall = separate_runs(
                path, args.algo, side, args.steps, args.warmup, side, per_run_threads
            )
            print(
                f"{tag} separate runs, {side} side by side with {per_run_threads} thread(s) each: "
                f"{separate:.1f} seed-upd/s steady ({wall:.1f} over the wall time, start-ups included); "
                f"{load()}",
                flush=True,
            )
        for k in args.ks:
            rate = ensemble_rate(path, args.algo, k, args.steps, args.warmup)
            line = f"{tag} K={k}: one process, {args.threads} thread(s): {k * rate:.1f} seed-upd/s "
            line += f"({rate:.2f} upd/s)"
            if separate:
                line += f"; / separate runs {k * rate / separate:.2f}x"
            print(f"{line}; {load()}", flush=True)


if __name__ == "__main__":
    main()
