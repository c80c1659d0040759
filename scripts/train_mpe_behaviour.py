"""Train the MPE behaviour policy (parameter-shared PPO) for the bundled MPE datasets.

    OMP_NUM_THREADS=1 python scripts/train_mpe_behaviour.py --out behaviour/mpe_simple_spread \
        --steps 900000 --checkpoint-every 30000 --seed 0

See omiga_pl/generate/mpe_behaviour.py; data/README.md lists the level command that follows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from omiga_pl.generate.mpe_behaviour import train


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scenario", default="mpe2.simple_spread_v3")
    parser.add_argument("--steps", type=int, default=900_000, help="agent-steps")
    parser.add_argument("--checkpoint-every", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train(args.out, args.scenario, args.steps, args.checkpoint_every, args.seed)


if __name__ == "__main__":
    main()
