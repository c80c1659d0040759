"""Where one update's time goes: a torch.profiler table of the plain update loop.

Profiles ``--steps`` updates of the module's update (the loop of
``benchmarks/common.py: plain_loop``, which is what the Lightning loop runs per step) at
one of the benchmark shapes, on one thread, and prints the operators sorted by their own
CPU time (the table in docs/performance.md).

    python benchmarks/profile_update.py --shape 5m_vs_6m --steps 50
    python benchmarks/profile_update.py --shape Hopper-3x1 --algo omiga --rows 25
    python benchmarks/profile_update.py --shape Hopper-3x1 --fast     # under conf/presets/fast.yaml
    python benchmarks/profile_update.py --shape 5m_vs_6m --bf16       # the forward under bf16 autocast
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import build_module, machine_summary, plain_loop  # noqa: E402
from throughput import SHAPES, synthetic_file  # noqa: E402

from omiga_pl.data.batch import Batch  # noqa: E402
from omiga_pl.data.datamodule import OfflineMARLDataModule  # noqa: E402


def autocast_bf16(forward: Callable[[Batch], Any]) -> Callable[[Batch], Any]:
    """``forward`` under CPU bf16 autocast (what Lightning's bf16-mixed wraps the step in)."""

    def under_autocast(batch: Batch) -> Any:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return forward(batch)

    return under_autocast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="5m_vs_6m", choices=list(SHAPES))
    parser.add_argument("--algo", default="omiga")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=20, help="operators shown")
    parser.add_argument(
        "--fast", action="store_true", help="under conf/presets/fast.yaml: compiled update, fused Adam"
    )
    parser.add_argument("--bf16", action="store_true", help="forward under bf16 autocast (as bf16-mixed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_summary())
    with tempfile.TemporaryDirectory() as tmp:
        datamodule = OfflineMARLDataModule(
            synthetic_file(Path(tmp), args.shape, episodes=300), batch_size=128
        )
        module = build_module(datamodule, args.algo, **({"adam_impl": "fused"} if args.fast else {}))
        if args.bf16:
            module.compute_losses = autocast_bf16(module.compute_losses)
        if args.fast:
            module.compute_losses = torch.compile(module.compute_losses)
        plain_loop(module, datamodule, steps=10, warmup=0)  # compiles, under --fast
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            rate = plain_loop(module, datamodule, steps=args.steps, warmup=0)
    label = f"{args.shape}/{args.algo}{' fast' if args.fast else ''}{' bf16' if args.bf16 else ''}"
    print(f"[{label}] {rate:.1f} upd/s under the profiler")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
