"""Train a single-agent behaviour policy for a MaMuJoCo task, resumably (stable-baselines3).

    python scripts/train_behaviour.py --scenario Hopper-3x1 --algo td3 --total-steps 400000 \
        --checkpoint-every 10000 --out behaviour/Hopper-3x1

The command line over :func:`omiga_pl.generate.behaviour.train`; the run directory's
layout, the algorithms' settings and the measured speeds are documented there. Running
the same command again continues from the last checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from omiga_pl.errors import OmigaError
from omiga_pl.generate.behaviour import ALGOS, train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="Hopper-3x1")
    parser.add_argument("--algo", choices=ALGOS, default="td3")
    parser.add_argument("--total-steps", type=int, default=1_000_000)
    parser.add_argument("--checkpoint-every", type=int, default=25_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        train(
            args.out,
            scenario=args.scenario,
            algo=args.algo,
            total_steps=args.total_steps,
            checkpoint_every=args.checkpoint_every,
            eval_episodes=args.eval_episodes,
            seed=args.seed,
        )
    except OmigaError as error:
        parser.error(str(error))  # one line on stderr, exit status 2


if __name__ == "__main__":
    main()
