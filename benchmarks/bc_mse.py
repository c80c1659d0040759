"""Deterministic behaviour cloning (MSE on tanh outputs) on a MaMuJoCo dataset, as a run of
the BC baseline: a reference point for how learnable a file's actions are, next to the
tanh-Gaussian log-likelihood that OMIGA (and ``algo.loss=nll``) fits.

    python benchmarks/bc_mse.py data/mamujoco_hopper_3x1_expert.h5 [--updates 4000] [--episodes 5]

It is exactly ``python -m omiga_pl.fit --config conf/mamujoco.yaml algo.name=bc
algo.loss=mse data.path=FILE trainer.max_steps=N eval.every=N eval.episodes=E`` (one
thread, run directory in a temporary folder) and prints the final evaluation beside the
dataset's mean return. Compare with OMIGA at the same budget::

    python -m omiga_pl.fit --config conf/mamujoco.yaml --config conf/mamujoco/hopper_3x1_expert.yaml \\
        trainer.max_steps=4000 eval.every=2000 eval.episodes=5 [algo.action_eps=1e-3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from omiga_pl.data.formats.native import read_card
from omiga_pl.data.paths import resolve_data_path
from omiga_pl.fit import build_config, parse_args, run

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--updates", type=int, default=4000)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    card = read_card(resolve_data_path(args.path))
    if card.get("obs_mode") != "reference":
        sys.exit(f"{args.path}: expected a reference-mode MaMuJoCo file, found {card.get('obs_mode')}")
    with tempfile.TemporaryDirectory() as out:
        fit_args = parse_args(
            [
                "--config",
                str(ROOT / "conf" / "mamujoco.yaml"),
                "algo.name=bc",
                "algo.loss=mse",
                f"data.path={args.path}",
                f"seed={args.seed}",
                "threads=1",
                f"trainer.max_steps={args.updates}",
                f"eval.every={args.updates}",
                f"eval.episodes={args.episodes}",
                f"log.out_dir={out}",
                "trainer.enable_progress_bar=false",
            ]
        )
        final = run(build_config(fit_args))["eval"]
    print(
        f"{args.path}: BC-MSE after {args.updates} updates: return {final['return_mean']:.1f} "
        f"± {final['return_std']:.1f}, episode length {final['episode_length_mean']:.0f}; "
        f"dataset mean {card['return_mean']:.1f}"
    )


if __name__ == "__main__":
    main()
