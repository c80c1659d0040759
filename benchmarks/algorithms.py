"""Updates/s of every registered algorithm through the Lightning fit loop, as a ratio to OMIGA.

On the bundled SMAX 3m medium file (discrete) and the bundled Hopper 3x1 medium-replay
file (continuous); batch 128, each algorithm's default config. Runs alternate between
algorithms (omiga, bc, icq, ..., omiga, bc, ...) so machine noise hits all alike; the
median of ``--repeats`` runs is printed with its ratio to OMIGA's median in the same run.

    python benchmarks/algorithms.py                  # both datasets, every algorithm
    python benchmarks/algorithms.py --steps 300 --repeats 3 --threads 2 --algos omiga bc
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import build_module, lightning_loop, machine_summary  # noqa: E402

from omiga_pl.algos import ALGORITHMS  # noqa: E402
from omiga_pl.data.datamodule import OfflineMARLDataModule  # noqa: E402

DATASETS = {
    "SMAX 3m medium": ROOT / "data" / "smax_3m_medium.h5",
    "Hopper 3x1 medium-replay": ROOT / "data" / "mamujoco_hopper_3x1_medium_replay.h5",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed updates per run")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--algos", nargs="*", default=list(ALGORITHMS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_summary())
    print(f"batch 128, {args.steps} timed updates after {args.warmup}, median of {args.repeats} runs")
    for label, path in DATASETS.items():
        datamodule = OfflineMARLDataModule(path, batch_size=128)
        action_type = datamodule.load().dims.action_type
        names = [n for n in args.algos if action_type in ALGORITHMS[n].action_types]
        if "omiga" in names:  # OMIGA first: every ratio refers to it
            names.remove("omiga")
            names.insert(0, "omiga")
        runs: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeats):
            for name in names:
                gc.collect()
                module = build_module(datamodule, name)
                runs[name].append(lightning_loop(module, datamodule, args.steps, args.warmup))
        base = statistics.median(runs["omiga"]) if "omiga" in runs else None
        print(f"\n{label} ({action_type}):")
        print("| algorithm | updates/s | ratio to OMIGA | runs |")
        print("|---|---|---|---|")
        for name, values in runs.items():
            median = statistics.median(values)
            ratio = f"{median / base:.2f}" if base else "-"
            print(f"| {name} | {median:.1f} | {ratio} | {', '.join(f'{v:.1f}' for v in values)} |")


if __name__ == "__main__":
    main()
