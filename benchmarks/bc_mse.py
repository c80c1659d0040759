"""Plain behaviour cloning (MSE on tanh outputs) on a MaMuJoCo dataset: a reference point
for how learnable a file's actions are, next to OMIGA's tanh-Gaussian log-likelihood.

    python benchmarks/bc_mse.py data/mamujoco_hopper_3x1_expert.h5 [--updates 4000]

One shared 256-256 MLP over the reference-mode observations (agent one-hot included),
Adam 5e-4, batch 384 agent-rows, then ``--episodes`` greedy episodes in the env the
card names. Compare with (same updates and episodes)::

    python -m omiga_pl.fit --config conf/mamujoco.yaml --config conf/mamujoco/hopper_3x1_expert.yaml \\
        trainer.max_steps=4000 eval.every=2000 eval.episodes=5 [algo.action_eps=1e-3]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from omiga_pl.data.formats.native import read_card, read_native
from omiga_pl.envs.mamujoco import MaMuJoCoVecEnv
from omiga_pl.evaluation import run_episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--updates", type=int, default=4000)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    data, card = read_native(args.path)
    if card.get("obs_mode") != "reference":
        found = card.get("obs_mode")
        raise SystemExit(f"{args.path}: expected a reference-mode MaMuJoCo file, found {found}")
    lengths = np.asarray(data.episode_lengths)
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    rows = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)])
    obs = torch.as_tensor(np.asarray(data.observations)[rows]).flatten(0, 1)
    actions = torch.as_tensor(np.asarray(data.actions)).flatten(0, 1)
    net = torch.nn.Sequential(
        torch.nn.Linear(obs.shape[1], 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, actions.shape[1]),
        torch.nn.Tanh(),
    )
    optimizer = torch.optim.Adam(net.parameters(), 5e-4)
    gen = torch.Generator().manual_seed(args.seed)
    for _ in range(args.updates):
        idx = torch.randint(0, obs.shape[0], (384,), generator=gen)
        loss = ((net(obs[idx]) - actions[idx]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    env = MaMuJoCoVecEnv(card["scenario"], args.episodes, obs_mode="reference")
    with torch.no_grad():
        stats = run_episodes(env, lambda obs, avail: net(obs), seed=10_000 + args.seed)
    returns, steps = stats.returns, stats.lengths
    print(
        f"{args.path}: BC-MSE after {args.updates} updates: return {returns.mean():.1f} "
        f"± {returns.std():.1f}, "
        f"episode length {steps.mean():.0f} (final batch loss {loss.item():.4f}); dataset mean "
        f"{read_card(args.path)['return_mean']:.1f}"
    )


if __name__ == "__main__":
    main()
