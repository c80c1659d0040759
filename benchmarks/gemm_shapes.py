"""The matmuls of one update, alone: how fast this CPU runs them, and whether grouping nets helps.

At 5m_vs_6m shapes an update's Linear layers are [640, 145] x [145, 256] (first layers of
Q, V and the policy on the same observations) and [640, 256] x [256, 256] (hidden
layers). This prints, on ``--threads`` threads:

* fp32 and bf16 GFLOP/s of one hidden-layer matmul (what bf16-mixed buys on this CPU);
* three first layers as three ``addmm`` against one ``addmm`` of the concatenated
  weights (a grouped forward of Q, V and the policy);
* three hidden layers as three ``addmm`` against one ``bmm`` (how vmap or a grouped net
  would run them);
* ReLU out of place against in place.

    python benchmarks/gemm_shapes.py
    python benchmarks/gemm_shapes.py --rows 384 --in-dim 18   # Hopper-3x1 shapes
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_summary


def microseconds(fn: Callable[[], object], repeats: int) -> float:
    """Mean time of one call over ``repeats`` calls, after 10 warm-up calls."""
    for _ in range(10):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=640, help="batch x agents (5m_vs_6m: 128 x 5)")
    parser.add_argument("--in-dim", type=int, default=145, help="observation + agent id (5m_vs_6m: 140 + 5)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--nets", type=int, default=3, help="nets reading the same input (Q, V, policy)")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_summary())
    g = torch.Generator().manual_seed(0)
    rows, d, h, k = args.rows, args.in_dim, args.hidden, args.nets
    x = torch.randn(rows, d, generator=g)
    w1, b1 = torch.randn(h, d, generator=g), torch.randn(h, generator=g)
    w1k, b1k = torch.randn(k * h, d, generator=g), torch.randn(k * h, generator=g)
    hid = torch.randn(rows, h, generator=g)
    w2, b2 = torch.randn(h, h, generator=g), torch.randn(h, generator=g)
    hid_k, w2_k = torch.randn(k, rows, h, generator=g), torch.randn(k, h, h, generator=g)

    flops = 2 * rows * h * h
    fp32 = microseconds(lambda: torch.mm(hid, w2), args.repeats)
    hid16, w216 = hid.bfloat16(), w2.bfloat16()
    bf16 = microseconds(lambda: torch.mm(hid16, w216), args.repeats)
    print(
        f"hidden matmul [{rows},{h}]x[{h},{h}]: fp32 {fp32:.0f} us ({flops / fp32 / 1e3:.1f} GFLOP/s), "
        f"bf16 {bf16:.0f} us ({flops / bf16 / 1e3:.1f} GFLOP/s); bf16 / fp32 speed {fp32 / bf16:.2f}x"
    )
    separate = k * microseconds(lambda: torch.addmm(b1, x, w1.t()), args.repeats)
    grouped = microseconds(lambda: torch.addmm(b1k, x, w1k.t()), args.repeats)
    print(
        f"{k} first layers [{rows},{d}]x[{d},{h}]: {k} addmm {separate:.0f} us, one addmm of the "
        f"concatenated weights {grouped:.0f} us; grouped / separate speed {separate / grouped:.2f}x"
    )
    separate = k * microseconds(lambda: torch.addmm(b2, hid, w2.t()), args.repeats)
    batched = microseconds(lambda: torch.bmm(hid_k, w2_k), args.repeats)
    print(
        f"{k} hidden layers: {k} addmm {separate:.0f} us, one bmm {batched:.0f} us; "
        f"bmm / separate speed {separate / batched:.2f}x"
    )
    out_of_place = microseconds(lambda: torch.relu(hid), args.repeats)
    in_place = microseconds(lambda: torch.relu_(hid), args.repeats)
    print(
        f"ReLU [{rows},{h}]: out of place {out_of_place:.1f} us, in place {in_place:.1f} us; "
        f"{out_of_place / in_place:.2f}x"
    )


if __name__ == "__main__":
    main()
