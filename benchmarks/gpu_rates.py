"""Updates/s on an accelerator (issue 13, item 3), prepared to run in one command the day a
GPU is lent: the single run through the Lightning fit loop (fp32 eager, CUDA graphs via
``compile=reduce-overhead``, bf16-mixed) and seed ensembles of K members (aggregate
seed-updates/s = K x updates/s), at SMAX 5m_vs_6m and MaMuJoCo Hopper 3x1 shapes, batch
128, MLPs 256x256. The dataset lives on the device (``data.storage_on_device``); the timer
synchronises CUDA at its two stamps, so queued kernels are counted.

    python benchmarks/gpu_rates.py                                     # a CUDA machine, ~5 min
    python benchmarks/gpu_rates.py --accelerator cpu --steps 5 --ks 1 2 --compile none   # smoke run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import build_module, lightning_loop, machine_summary  # noqa: E402
from throughput import synthetic_file  # noqa: E402

from omiga_pl.data.datamodule import OfflineMARLDataModule  # noqa: E402
from omiga_pl.ensemble import EnsembleDataModule, EnsembleModule  # noqa: E402


def device_summary(accelerator: str) -> str:
    if accelerator != "cpu" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    return machine_summary()


def rates(path: Path, args: argparse.Namespace) -> dict[str, float]:
    """Label -> updates/s (ensembles: seed-updates/s) for one shape's dataset."""

    def single(precision: str = "32-true", compile_mode: str | None = None) -> float:
        datamodule = OfflineMARLDataModule(path, batch_size=128)
        module = build_module(datamodule, args.algo)
        return lightning_loop(
            module,
            datamodule,
            args.steps,
            args.warmup,
            precision=precision,
            compile_mode=compile_mode,
            accelerator=args.accelerator,
        )

    def ensemble(k: int) -> float:
        seeds = list(range(k))
        datamodule = EnsembleDataModule(path, batch_size=128, seeds=seeds)
        members = [build_module(datamodule, args.algo, seed=seed) for seed in seeds]
        module = EnsembleModule(members, seeds)
        return k * lightning_loop(module, datamodule, args.steps, args.warmup, accelerator=args.accelerator)

    loops: dict[str, Callable[[], float]] = {"single fp32": single}
    if args.compile != "none":
        loops[f"single fp32 compile={args.compile}"] = lambda: single(compile_mode=args.compile)
    loops["single bf16-mixed"] = lambda: single("bf16-mixed")
    for k in args.ks:
        loops[f"ensemble K={k}"] = lambda k=k: ensemble(k)
    out = {}
    for label, loop in loops.items():
        out[label] = loop()
        print(f"  {label}: {out[label]:.1f} {'seed-' if 'ensemble' in label else ''}upd/s", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--algo", default="omiga")
    parser.add_argument("--shapes", nargs="*", default=["5m_vs_6m", "Hopper-3x1"])
    parser.add_argument("--ks", type=int, nargs="*", default=[1, 8, 64])
    parser.add_argument("--steps", type=int, default=300, help="timed updates per loop")
    parser.add_argument("--warmup", type=int, default=30, help="untimed updates first (compilation, graphs)")
    parser.add_argument("--compile", default="reduce-overhead", help="single-run compile mode, or none")
    args = parser.parse_args(argv)
    print(device_summary(args.accelerator), f"| algo {args.algo}, {args.steps} timed updates per loop")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            print(f"[{shape}]", flush=True)
            results[shape] = rates(synthetic_file(Path(tmp), shape, episodes=300), args)
            base = results[shape]["single fp32"]
            ratios = ", ".join(f"{label} {value / base:.2f}x" for label, value in results[shape].items())
            print(f"[{shape}] / single fp32: {ratios}", flush=True)
    return results


if __name__ == "__main__":
    main()
