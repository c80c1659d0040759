"""Where the Lightning fit loop's cost over a plain loop goes (docs/performance.md).

* **no-op step**: ``Trainer.fit`` with a ``training_step`` that only steps an optimizer
  over frozen parameters: Lightning's own per-update cost plus the batch gather.
* **switched off, one at a time**, in the loop under ``conf/presets/fast.yaml``: the
  interval means of the training scalars, the cosine policy rate (``constant`` instead),
  Lightning's batch-transfer hook. Loops alternate; medians and ratios to the unchanged
  loop are printed.

    python benchmarks/lightning_overhead.py --shape Hopper-3x1 --steps 400 --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import build_module, lightning_loop, machine_summary  # noqa: E402
from throughput import SHAPES, synthetic_file  # noqa: E402

from omiga_pl.data.datamodule import OfflineMARLDataModule  # noqa: E402


def noop_rate(datamodule: OfflineMARLDataModule, steps: int) -> float:
    module = build_module(datamodule)
    for param in module.parameters():
        param.requires_grad_(False)

    def training_step(self, batch, batch_idx):  # the update count advances with opt.step()
        self.optimizers().step()

    module.training_step = types.MethodType(training_step, module)
    return lightning_loop(module, datamodule, steps, 30)


def fast_rate(datamodule: OfflineMARLDataModule, steps: int, without: str) -> float:
    extra = {"policy_lr_schedule": "constant"} if without == "cosine policy rate" else {}
    module = build_module(datamodule, adam_impl="fused", **extra)
    if without == "interval means":
        module.accumulate_scalars = lambda *args: None
    if without == "batch transfer hook":
        module.transfer_batch_to_device = lambda batch, device, index: batch
    return lightning_loop(module, datamodule, steps, 30, compile_mode="default")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="Hopper-3x1", choices=list(SHAPES))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_summary())
    with tempfile.TemporaryDirectory() as tmp:
        datamodule = OfflineMARLDataModule(synthetic_file(Path(tmp), args.shape, 1000), batch_size=128)
        print(f"[{args.shape}] no-op training_step: {noop_rate(datamodule, 2000):.0f} steps/s")
        kinds = ["nothing", "interval means", "cosine policy rate", "batch transfer hook"]
        runs: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.repeats):
            for kind in kinds:
                runs[kind].append(fast_rate(datamodule, args.steps, kind))
        base = statistics.median(runs["nothing"])
        for kind in kinds:
            median = statistics.median(runs[kind])
            print(
                f"[{args.shape}] fast loop without {kind}: {median:.1f} upd/s, {median / base:.3f}x "
                f"(runs {[round(r, 1) for r in runs[kind]]})"
            )


if __name__ == "__main__":
    main()
