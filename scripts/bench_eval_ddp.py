"""Evaluation wall time with 1 and 2 DDP processes (gloo, CPU), measured in one run.

    flock /work/bench.lock python scripts/bench_eval_ddp.py --episodes 64 --final-episodes 640

Each configuration trains OMIGA for 2 updates on the bundled MPE medium data and then
runs the final evaluation (``--final-episodes`` episodes of mpe2 simple_spread in chunks
of ``ceil(episodes / processes)`` slots per rank); the figure is the final evaluation's
``seconds`` from final_eval.json (rank 0's wall time, sync included), best of
``--repeats``. Prints a JSON line per configuration and the 1/2 ratio, with ``uptime``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(processes: int, episodes: int, final_episodes: int, out: Path) -> float:
    args = [
        sys.executable,
        "-m",
        "omiga_pl.fit",
        "--config",
        str(ROOT / "conf" / "mpe.yaml"),
        f"data.path={ROOT / 'data' / 'mpe_simple_spread_medium.h5'}",
        "trainer.max_steps=2",
        "eval.every=1000000",
        f"eval.episodes={episodes}",
        f"eval.final_episodes={final_episodes}",
        "trainer.enable_progress_bar=false",
        "threads=1",
        f"log.out_dir={out}",
        f"log.run_name=p{processes}",
    ]
    if processes > 1:
        args[5:5] = ["--config", str(ROOT / "conf" / "trainer" / "ddp.yaml"), f"trainer.devices={processes}"]
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "NODE_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=out)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    record = json.loads((out / f"p{processes}" / "final_eval.json").read_text())
    assert record["episodes"] == final_episodes and record["processes"] == processes
    return float(record["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--final-episodes", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    best = {}
    for processes in (1, 2):
        times = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                times.append(run(processes, args.episodes, args.final_episodes, Path(tmp)))
        best[processes] = min(times)
        print(json.dumps({"processes": processes, "final_episodes": args.final_episodes, "seconds": times}))
    after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"speed-up 1 -> 2 processes: {best[1] / best[2]:.2f}x (best of {args.repeats})")
    print(f"load before: {load}\nload after:  {after}")


if __name__ == "__main__":
    main()
