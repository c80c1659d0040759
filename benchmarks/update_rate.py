"""Updates/s of the plain update loop at one benchmark shape, and a checksum of the
weights it ends with: the A/B tool for a change that should be faster and leave the
numbers alone (run it from two checkouts, alternating, on an otherwise idle machine).

    python benchmarks/update_rate.py --shape 5m_vs_6m --steps 150
    PYTHONPATH=/path/to/other/checkout python benchmarks/update_rate.py --shape Hopper-3x1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import build_module, machine_summary, plain_loop  # noqa: E402
from throughput import SHAPES, synthetic_file  # noqa: E402

import omiga_pl  # noqa: E402
from omiga_pl.data.datamodule import OfflineMARLDataModule  # noqa: E402


def weight_checksum(module: torch.nn.Module) -> float:
    """Sum of |w| over every parameter, in float64: equal checksums, equal runs (in practice)."""
    return float(sum(p.detach().double().abs().sum() for p in module.parameters()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="5m_vs_6m", choices=list(SHAPES))
    parser.add_argument("--algo", default="omiga")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_summary())
    with tempfile.TemporaryDirectory() as tmp:
        datamodule = OfflineMARLDataModule(
            synthetic_file(Path(tmp), args.shape, episodes=300), batch_size=128
        )
        module = build_module(datamodule, args.algo)
        rate = plain_loop(module, datamodule, steps=args.steps, warmup=args.warmup)
    source = Path(omiga_pl.__file__).resolve().parent.parent
    print(
        f"[{args.shape}/{args.algo}] {rate:.1f} upd/s; weight checksum {weight_checksum(module):.10f}; "
        f"omiga_pl from {source}"
    )


if __name__ == "__main__":
    main()
