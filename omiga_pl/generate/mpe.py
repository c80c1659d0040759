"""MPE offline datasets (mpe2 through PettingZoo): ``python -m omiga_pl.generate mpe levels``.

From a behaviour run of :func:`omiga_pl.generate.mpe_behaviour.train` (parameter-shared
PPO on the team reward; ``scripts/train_mpe_behaviour.py``), ``levels`` writes, as OMAR's
MPE datasets are organised:

* ``random``: uniformly random actions;
* ``expert``: the checkpoint with the best scored return;
* ``medium``: the checkpoint before the expert one whose scored return is closest to
  halfway between random and expert (MPE returns are negative, so D4RL's "1/3 of the
  expert return" has no meaning here; halfway in normalised score plays its part);
* ``medium-replay``: episodes of every checkpoint from the untrained one up to the
  medium one, an equal share each, in training order (PPO keeps no replay buffer; its
  successive policies' rollouts play that part, as for the MaMuJoCo PPO levels).

Behaviour episodes sample the stochastic policy. Observations are each agent's own
mpe2 observation; no ``states`` are stored: mpe2's ``state()`` is exactly the
concatenated observations, which is what the mixer sees without states (the card says
``state_source``). Every card carries ``reference_returns = {random, expert}`` (the random
and expert levels' mean returns) for ``eval/normalized_score``.

The files are a pure function of the behaviour run, the command line (in the card) and
the library versions (in the card).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

import omiga_pl
from omiga_pl.data.formats.native import EpisodeDataset, write_native
from omiga_pl.envs.pettingzoo_in import PettingZooVecEnv
from omiga_pl.errors import OmigaError
from omiga_pl.rollout import episode_rows, rollout

PROG = "omiga_pl.generate mpe"
LEVELS = ("random", "medium-replay", "medium", "expert")
REWARD_NOTE = (
    "team reward = mean over the agents of mpe2's per-agent rewards (simple_spread: "
    "local_ratio 0.5 mix of the shared landmark-coverage term and the agent's own collision penalty)"
)


def _versions() -> dict[str, str]:
    out = {"omiga_pl": omiga_pl.__version__, "numpy": np.__version__}
    for name in ("mpe2", "pettingzoo", "stable-baselines3", "torch", "h5py"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def collect(env: PettingZooVecEnv, act: Any, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """``episodes`` recorded episodes of ``act(result) -> actions``, as native rows."""
    parts, done, batch = [], 0, 0
    while done < episodes:
        reset_seed = int(np.random.SeedSequence([seed, batch]).generate_state(1, np.uint32)[0])
        stats = rollout(env, act, reset_seed, record=True)
        keep = min(env.num_envs, episodes - done)
        parts.append(episode_rows(stats, keep))
        done, batch = done + keep, batch + 1
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _dataset(rows: dict[str, np.ndarray]) -> EpisodeDataset:
    return EpisodeDataset(
        observations=rows["observations"],
        actions=rows["actions"].astype(np.int64),
        rewards=rows["rewards"].astype(np.float32),
        terminations=rows["terminations"],
        truncations=rows["truncations"],
        episode_lengths=rows["episode_lengths"],
        avail_actions=rows["avail_actions"],
    )


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _mean_return(rows: dict[str, np.ndarray]) -> float:
    return float(_dataset(rows).episode_returns().mean())


def levels(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Write every level in ``args.levels``; returns their cards."""
    import json

    import torch
    from stable_baselines3 import PPO

    from omiga_pl.generate.mpe_behaviour import sb3_act

    bdir = Path(args.behaviour_dir)
    try:
        progress = json.loads((bdir / "progress.json").read_text())
    except (OSError, ValueError) as error:
        raise OmigaError(
            f"{bdir / 'progress.json'}: cannot read the behaviour run's progress: {error}"
        ) from None
    scenario, env_kwargs = progress["scenario"], progress.get("env_kwargs", {})
    scores = {int(step): c["return_mean"] for step, c in progress["checkpoints"].items()}
    steps = sorted(scores)
    env = PettingZooVecEnv(scenario, num_envs=args.num_envs, env_kwargs=env_kwargs)
    rng = np.random.default_rng(np.random.SeedSequence([args.seed, 99]))

    def random_act(result: Any) -> np.ndarray:
        noise = rng.random(result.avail_actions.shape)
        noise[~result.avail_actions] = -1.0
        return noise.argmax(-1)

    def policy(step: int) -> Any:
        model = PPO.load(bdir / f"ckpt_{step}.zip", device="cpu")
        return lambda result: sb3_act(model, result.observations)

    rows: dict[str, dict[str, np.ndarray]] = {}
    rows["random"] = collect(env, random_act, args.episodes, seed=args.seed)
    random_return = _mean_return(rows["random"])
    expert_step = max(steps, key=lambda s: scores[s])
    torch.manual_seed(args.seed)
    rows["expert"] = collect(env, policy(expert_step), args.episodes, seed=args.seed + 1)
    expert_return = _mean_return(rows["expert"])
    target = 0.5 * (scores[0] + scores[expert_step])
    earlier = [s for s in steps if s < expert_step]
    medium_step = min(earlier, key=lambda s: (abs(scores[s] - target), s))
    if "medium" in args.levels:
        torch.manual_seed(args.seed + 2)
        rows["medium"] = collect(env, policy(medium_step), args.episodes, seed=args.seed + 2)
    replay_steps = [s for s in steps if s <= medium_step]
    if "medium-replay" in args.levels:
        torch.manual_seed(args.seed + 3)
        share = np.full(len(replay_steps), args.replay_episodes // len(replay_steps))
        share[: args.replay_episodes % len(replay_steps)] += 1
        rows["medium-replay"] = _concat(
            [
                collect(env, policy(s), int(n), seed=args.seed + 3 + 1000 * i)
                for i, (s, n) in enumerate(zip(replay_steps, share))
                if n > 0
            ]
        )
    behaviour = (
        f"{progress['algo']} (seed {progress['seed']}, {progress['total_steps']} agent-steps, "
        f"{progress.get('seconds', 0):.0f} s on 1 CPU thread), sampled actions"
    )
    sources = {
        "random": "uniformly random available actions",
        "expert": f"{behaviour}; checkpoint {expert_step} (best scored return {scores[expert_step]:.2f})",
        "medium": f"{behaviour}; checkpoint {medium_step} (scored return {scores[medium_step]:.2f}, "
        f"closest to halfway {target:.2f} between the untrained and the expert checkpoint)",
        "medium-replay": f"{behaviour}; checkpoints {replay_steps} (untrained up to medium), "
        f"{args.replay_episodes} episodes shared equally, in training order",
    }
    state_source = env.state_source
    cards = {}
    for level in args.levels:
        card = {
            "env_family": "pettingzoo",
            "scenario": scenario,
            "env_kwargs": env_kwargs,
            "env_version": f"mpe2 {_versions().get('mpe2', '?')}",
            "episode_limit": env.spec.episode_limit,
            "state_source": f"{state_source} (not stored: mpe2's state() is the concatenated observations)",
            "quality": level,
            "behaviour_policy": sources[level],
            "reward": REWARD_NOTE,
            "seed": args.seed,
            "reference_returns": {"random": random_return, "expert": expert_return},
            "reference_note": "random = the random level's mean return, expert = the expert level's",
            "behaviour_checkpoint_scores": {str(s): round(scores[s], 4) for s in steps},
            "versions": _versions(),
            "command": args.command,
        }
        path = Path(args.out_dir) / f"{args.prefix}_{level.replace('-', '_')}.h5"
        cards[level] = write_native(path, _dataset(rows[level]), card, overwrite=args.overwrite)
        print(
            f"{path}: {cards[level]['n_episodes']} episodes, return {cards[level]['return_mean']:.2f} "
            f"± {cards[level]['return_std']:.2f} (random {random_return:.2f}, expert {expert_return:.2f})",
            flush=True,
        )
    env.close()
    return cards


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="MPE offline datasets from a behaviour run")
    sub = parser.add_subparsers(dest="command_name", required=True)
    lv = sub.add_parser("levels", help="write random / medium-replay / medium / expert datasets")
    lv.add_argument("--behaviour-dir", required=True, help="a scripts/train_mpe_behaviour.py output")
    lv.add_argument("--out-dir", required=True)
    lv.add_argument("--prefix", default="mpe_simple_spread")
    lv.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS))
    lv.add_argument("--episodes", type=int, default=200, help="episodes per level")
    lv.add_argument("--replay-episodes", type=int, default=200, help="episodes of medium-replay")
    lv.add_argument("--num-envs", type=int, default=50)
    lv.add_argument("--seed", type=int, default=0)
    lv.add_argument("--overwrite", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command = shlex.join(
        ["python", "-m", "omiga_pl.generate", "mpe", *[a for a in argv if a != "--overwrite"]]
    )
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        levels(args)
    except OmigaError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    print(f"{PROG}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0
