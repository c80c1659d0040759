"""Generate MaMuJoCo offline datasets in the D4RL manner: ``python -m omiga_pl.generate mamujoco``
(``python -m omiga_pl.generate_mamujoco`` is the same command under its older name).

Behaviour policies are stable-baselines3 agents trained on the joint single-agent task by
:func:`omiga_pl.generate.behaviour.train` (``scripts/train_behaviour.py``; resumable, it
evaluates every checkpoint and records every training transition). From such a run
directory, ``levels`` writes:

* ``expert``: episodes of the best checkpoint: highest training-run evaluation return, or
  with ``--expert-select stochastic`` highest return over ``--select-episodes``
  stochastic episodes (Ant: the deterministic evaluations favour an early checkpoint that
  only stands still, and falls at once when its actions are sampled);
* ``medium``: episodes of the checkpoint (before the expert one) whose return is closest
  to 1/3 of the expert dataset's mean return. Each candidate checkpoint is re-evaluated on
  ``--select-episodes`` (default 10) episodes with stochastic actions, as the datasets
  are sampled; the training run's own evaluations (few deterministic episodes) are too
  noisy and use another convention (HalfCheetah: a checkpoint evaluated at 275 ± 586 on 3
  deterministic episodes gave a "medium" at 2/3 of the expert). ``--select-episodes 0``
  falls back to those evaluations;
* ``medium-replay``: every training episode recorded up to the medium checkpoint: for
  TD3 and SAC exactly the contents of the replay buffer at that point, as in D4RL (for
  PPO, which has no replay buffer, its rollouts up to that point play that part);
* ``medium-expert``: medium and expert concatenated;

plus uniform-random episodes whose mean return is the ``random`` reference. Every card
carries ``reference_returns = {"random", "expert"}`` (expert = the expert dataset's mean
return) for ``eval/normalized_score``. Behaviour episodes sample the stochastic policy
(as D4RL; TD3: greedy action + the run's Gaussian exploration noise); joint actions are
split onto the agents with gymnasium-robotics' mapping.

Files store what both observation modes need: ``observations`` in the card's
``obs_mode`` (what training reads), and the extra datasets ``global_states`` [rows, G]
(the single-agent observation) and ``local_observations`` [rows, N, W] (gymnasium-robotics
local observations, zero-padded), so ``convert`` can switch modes without the simulator.
In reference mode no ``states`` are stored: the mixer input is then the concatenation of
the agents' observations, as in the reference.

Example (the bundled Hopper files; data/README.md lists every task's commands)::

    python -m omiga_pl.generate mamujoco levels --behaviour-dir behaviour/Hopper-3x1 \
        --expert-select stochastic --episodes 30 --random-episodes 100 \
        --replay-fraction 0.6 --out-dir data --prefix mamujoco_hopper_3x1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omiga_pl.data.formats.native import (
    EpisodeDataset,
    read_native,
    render_card,
    sidecar_path,
    write_native,
)
from omiga_pl.envs.base import StepResult
from omiga_pl.envs.mamujoco import MaMuJoCoVecEnv, reference_observations
from omiga_pl.errors import DatasetError, OmigaError
from omiga_pl.generate.behaviour import sb3_policy
from omiga_pl.io import atomic_output, sha256_file
from omiga_pl.rollout import episode_rows
from omiga_pl.rollout import rollout as run_rollout

EXTRA_FIELDS = ("global_states", "local_observations")
LEVELS = ("expert", "medium", "medium-replay", "medium-expert")


@dataclass
class RawEpisodes:
    """Episodes in simulator terms, back to back (L + 1 rows per episode).

    global_states [R, G]; local_observations [R, N, W]; actions [T, N, A] per agent;
    rewards [T]; lengths [E]; terminated [E] (else truncated by the time limit).
    """

    global_states: np.ndarray
    local_observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray

    @staticmethod
    def concat(parts: list[RawEpisodes]) -> RawEpisodes:
        return RawEpisodes(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in RawEpisodes.__dataclass_fields__)
        )

    def returns(self) -> np.ndarray:
        starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        return np.add.reduceat(self.rewards.astype(np.float64), starts)

    def select(self, episodes: np.ndarray) -> RawEpisodes:
        """The episodes at indices ``episodes`` [K], in that order."""
        steps = np.concatenate([[0], np.cumsum(self.lengths)])
        rows = steps + np.arange(steps.size)  # each episode holds one more row than steps
        step_idx = np.concatenate([np.arange(steps[e], steps[e + 1]) for e in episodes])
        row_idx = np.concatenate([np.arange(rows[e], rows[e + 1]) for e in episodes])
        return RawEpisodes(
            global_states=self.global_states[row_idx],
            local_observations=self.local_observations[row_idx],
            actions=self.actions[step_idx],
            rewards=self.rewards[step_idx],
            lengths=self.lengths[episodes],
            terminated=self.terminated[episodes],
        )


def to_native(raw: RawEpisodes, obs_mode: str, n_agents: int) -> EpisodeDataset:
    """Native dataset in ``obs_mode`` (reference: no ``states``; local: global states)."""
    ends = np.cumsum(raw.lengths) - 1
    terminations = np.zeros(int(raw.lengths.sum()), dtype=bool)
    truncations = np.zeros_like(terminations)
    terminations[ends[raw.terminated]] = True
    truncations[ends[~raw.terminated]] = True
    if obs_mode == "reference":
        observations, states = reference_observations(raw.global_states, n_agents), None
    else:
        observations, states = raw.local_observations.astype(np.float32), raw.global_states.astype(np.float32)
    return EpisodeDataset(
        observations=observations,
        states=states,
        actions=raw.actions.astype(np.float32),
        rewards=raw.rewards.astype(np.float32),
        terminations=terminations,
        truncations=truncations,
        episode_lengths=raw.lengths.astype(np.int64),
    )


def write_mamujoco(
    path: str | os.PathLike, raw: RawEpisodes, card: dict[str, Any], overwrite: bool = False
) -> dict:
    """Write a native file plus the extra fields; returns the full card (with sha256)."""
    import h5py

    path = Path(path)
    if path.exists() and not overwrite:
        raise OmigaError(f"{path}: destination exists; pass --overwrite to replace it")
    data = to_native(raw, card["obs_mode"], raw.local_observations.shape[1])
    staging = path.with_name(f".{path.name}.{os.getpid()}.staging")
    try:
        full = write_native(staging, data, card, overwrite=True)
        with h5py.File(staging, "a") as handle:
            for name in EXTRA_FIELDS:
                handle.create_dataset(
                    name, data=getattr(raw, name).astype(np.float32), compression="gzip", shuffle=True
                )
        os.replace(staging, path)
    finally:
        for leftover in (staging, sidecar_path(staging)):
            if leftover.exists():
                leftover.unlink()
    full["sha256"] = sha256_file(path)
    with atomic_output(sidecar_path(path), overwrite=True) as tmp:
        tmp.write_text(render_card(path, full))
    return full


def read_raw(path: str | os.PathLike) -> tuple[RawEpisodes, dict[str, Any]]:
    """Back from a generated file to :class:`RawEpisodes` (needs the extra fields)."""
    import h5py

    data, card = read_native(path)
    with h5py.File(path, "r") as handle:
        for name in EXTRA_FIELDS:
            if name not in handle:
                raise DatasetError(
                    path, name, "missing: not a file written by python -m omiga_pl.generate mamujoco"
                )
        extras = {name: handle[name][()] for name in EXTRA_FIELDS}
    raw = RawEpisodes(
        actions=data.actions,
        rewards=data.rewards,
        lengths=data.episode_lengths,
        terminated=data.terminations[np.cumsum(data.episode_lengths) - 1],
        **extras,
    )
    return raw, card


# ----------------------------------------------------------------------------- rollouts
def rollout(env: MaMuJoCoVecEnv, policy: Any, episodes: int, seed: int) -> RawEpisodes:
    """``episodes`` episodes, ``env.num_envs`` at a time. ``policy(global_states [E, G],
    rng) -> joint actions [E, G_a]`` or None for uniform random per-agent actions."""
    rng = np.random.default_rng(seed)
    n, a_dim = env.spec.dims.n_agents, env.spec.dims.action_dim

    def step_policy(_: StepResult) -> np.ndarray:
        if policy is None:
            actions = rng.uniform(-1, 1, (env.num_envs, n, a_dim))
            for i, size in enumerate(env.action_sizes):
                actions[:, i, size:] = 0.0
        else:
            joint = policy(env.global_states(), rng)
            actions = np.stack([env.split_joint_actions(j) for j in joint])
        return actions.astype(np.float32)

    def simulator_views() -> dict[str, np.ndarray]:
        return {"global_states": env.global_states(), "local_observations": env.local_observations()}

    parts, done_eps, batch = [], 0, 0
    while done_eps < episodes:
        slots = min(env.num_envs, episodes - done_eps)
        stats = run_rollout(
            env, step_policy, seed + 1_000_003 * batch, record=True, extras=simulator_views, slots=slots
        )
        batch += 1
        rows = episode_rows(stats, slots)
        ends = np.cumsum(rows["episode_lengths"]) - 1
        parts.append(
            RawEpisodes(
                global_states=rows["global_states"],
                local_observations=rows["local_observations"],
                actions=rows["actions"],
                rewards=rows["rewards"],
                lengths=rows["episode_lengths"],
                terminated=rows["terminations"][ends],
            )
        )
        done_eps += slots
    return RawEpisodes.concat(parts)


def replay_episodes(behaviour_dir: Path, upto_step: int, n_agents: int, env: MaMuJoCoVecEnv) -> RawEpisodes:
    """Training episodes recorded in ``replay_<step>.npz`` chunks with step <= ``upto_step``."""
    chunks = sorted(
        (int(p.stem.split("_")[1]), p)
        for p in behaviour_dir.glob("replay_*.npz")
        if int(p.stem.split("_")[1]) <= upto_step
    )
    parts = []
    for _, path in chunks:
        z = np.load(path)
        if z["lengths"].size == 0:
            continue
        joint = z["joint_actions"]
        parts.append(
            RawEpisodes(
                global_states=z["global_states"],
                local_observations=z["local_observations"],
                actions=np.stack([env.split_joint_actions(j) for j in joint]),
                rewards=z["rewards"],
                lengths=z["lengths"],
                terminated=z["terminated"],
            )
        )
    if not parts:
        raise DatasetError(behaviour_dir, "replay", f"no recorded episodes up to step {upto_step}")
    return RawEpisodes.concat(parts)


def pick_levels(progress: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Expert = best evaluated checkpoint; medium = evaluation return closest to expert / 3
    among checkpoints before the expert one."""
    checkpoints = progress["checkpoints"]
    expert = max(checkpoints, key=lambda c: c["eval_return_mean"])
    target = expert["eval_return_mean"] / 3.0
    earlier = [c for c in checkpoints if c["step"] <= expert["step"]]
    medium = min(earlier, key=lambda c: abs(c["eval_return_mean"] - target))
    return {"expert": expert, "medium": medium}


def choose_medium(candidates: dict[int, float], expert_return: float) -> int:
    """The checkpoint step whose return is closest to ``expert_return / 3`` (ties: earlier)."""
    if not candidates:
        raise OmigaError("no candidate checkpoint for the medium level")
    target = expert_return / 3.0
    return min(sorted(candidates), key=lambda step: abs(candidates[step] - target))


def evaluate_candidates(
    env: MaMuJoCoVecEnv, bdir: Path, steps: list[int], episodes: int, seed: int
) -> dict[int, dict[str, float]]:
    """Stochastic-policy returns of each checkpoint in ``steps`` over ``episodes`` episodes."""
    out = {}
    for step in steps:
        returns = rollout(env, sb3_policy(bdir, step), episodes, seed=seed).returns()
        out[step] = {
            "mean": float(returns.mean()),
            "std": float(returns.std()),
            "episodes": int(returns.size),
        }
        print(
            f"checkpoint {step}: stochastic return {out[step]['mean']:.1f} ± {out[step]['std']:.1f}",
            flush=True,
        )
    return out


def _env_card(scenario: str, args: argparse.Namespace, env: Any) -> dict[str, Any]:
    """The card keys that say which environment and observations a generated file holds."""
    return {
        "env_family": "mamujoco",
        "scenario": scenario,
        "env_version": "gymnasium-robotics mamujoco_v1 / MuJoCo v5",
        "observation_version": "v5",
        "obs_mode": args.obs_mode,
        "agent_obsk": args.agent_obsk,
        "episode_limit": env.spec.episode_limit,
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("gymnasium-robotics", "gymnasium", "mujoco", "stable-baselines3"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def levels(args: argparse.Namespace, command: str) -> dict[str, dict[str, Any]]:
    """The ``levels`` command: random reference + the requested levels (module docstring).

    ``command`` is the command line recorded in every card.
    """
    bdir = Path(args.behaviour_dir)
    progress = json.loads((bdir / "progress.json").read_text())
    scenario = progress["scenario"]
    env = MaMuJoCoVecEnv(scenario, args.num_envs, obs_mode=args.obs_mode, agent_obsk=args.agent_obsk)
    picked = pick_levels(progress)
    import torch  # stochastic SB3 actions are drawn from torch's generator

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    random_raw = rollout(env, None, args.random_episodes, seed=args.seed + 1)
    random_return = float(random_raw.returns().mean())
    timings = {"random": time.perf_counter() - start}
    raws: dict[str, RawEpisodes] = {}
    need = set(args.levels) | ({"expert"} if "medium-expert" in args.levels else set())
    need |= {"medium"} if "medium-expert" in args.levels else set()
    need.add("expert")  # its mean return is the expert reference
    all_evals: dict[int, dict[str, float]] | None = None
    expert_how = "best training-run evaluation return"
    if args.expert_select == "stochastic":
        if args.select_episodes <= 0:
            raise OmigaError("--expert-select stochastic needs --select-episodes > 0")
        t = time.perf_counter()
        steps = [c["step"] for c in progress["checkpoints"]]
        all_evals = evaluate_candidates(env, bdir, steps, args.select_episodes, seed=args.seed + 3)
        best = max(steps, key=lambda step: all_evals[step]["mean"])
        picked["expert"] = {"step": best, "eval_return_mean": all_evals[best]["mean"]}
        expert_how = f"best of {len(steps)} checkpoints, each {args.select_episodes} stochastic episodes"
        timings["expert_selection"] = time.perf_counter() - t
    t = time.perf_counter()
    raws["expert"] = rollout(
        env, sb3_policy(bdir, picked["expert"]["step"]), args.episodes, seed=args.seed + 2
    )
    timings["expert"] = time.perf_counter() - t
    expert_return = float(raws["expert"].returns().mean())
    medium_how = "training-run evaluation return"
    if args.select_episodes > 0 and need & {"medium", "medium-replay", "medium-expert"}:
        t = time.perf_counter()
        steps = [c["step"] for c in progress["checkpoints"] if c["step"] < picked["expert"]["step"]]
        if all_evals is None:
            evals = evaluate_candidates(env, bdir, steps, args.select_episodes, seed=args.seed + 3)
        else:
            evals = {step: all_evals[step] for step in steps}
        if evals:
            step = choose_medium({k: v["mean"] for k, v in evals.items()}, expert_return)
            picked["medium"] = {"step": step, "eval_return_mean": evals[step]["mean"]}
            medium_how = (
                f"closest to expert/3 = {expert_return / 3:.1f} among {len(evals)} checkpoints, each "
                f"{args.select_episodes} stochastic episodes: "
                + ", ".join(f"{k}: {v['mean']:.1f}" for k, v in evals.items())
            )
        else:
            print("no checkpoint before the expert one: medium = the training-run choice", flush=True)
        timings["medium_selection"] = time.perf_counter() - t
    if "medium" in need:
        t = time.perf_counter()
        raws["medium"] = rollout(
            env, sb3_policy(bdir, picked["medium"]["step"]), args.episodes, seed=args.seed + 2
        )
        timings["medium"] = time.perf_counter() - t
    replay_how = ""
    if "medium-replay" in args.levels:
        t = time.perf_counter()
        replay = replay_episodes(bdir, picked["medium"]["step"], env.spec.dims.n_agents, env)
        n_replay = replay.lengths.size
        if args.replay_fraction < 1.0:
            # A seeded uniform subset of episodes keeps the mix of qualities across training.
            keep = round(args.replay_fraction * n_replay)
            chosen = np.random.default_rng(args.seed + 4).choice(n_replay, size=keep, replace=False)
            replay = replay.select(np.sort(chosen))
            replay_how = (
                f"; a seeded uniform subsample of {keep} of its {n_replay} episodes "
                f"(--replay-fraction {args.replay_fraction}), kept in training order"
            )
        raws["medium-replay"] = replay
        timings["medium-replay"] = time.perf_counter() - t
    if "medium-expert" in args.levels:
        raws["medium-expert"] = RawEpisodes.concat([raws["medium"], raws["expert"]])
    behaviour = (
        f"stable-baselines3 {progress['algo'].upper()} on the joint {scenario} task (seed {progress['seed']})"
    )
    noise_std = progress.get("hyperparameters", {}).get("action_noise_std")
    sampling = (
        f"greedy actions plus Gaussian noise (std {noise_std}), clipped to [-1, 1]"
        if progress["algo"] == "td3"
        else "stochastic actions"
    )
    sources = {
        "expert": f"{behaviour}, checkpoint {picked['expert']['step']} steps (return "
        f"{picked['expert']['eval_return_mean']:.1f}; {expert_how}), {sampling}",
        "medium": f"{behaviour}, checkpoint {picked['medium']['step']} steps (return "
        f"{picked['medium']['eval_return_mean']:.1f}; {medium_how}), {sampling}",
        "medium-replay": f"{behaviour}: every training episode up to the medium checkpoint "
        f"({picked['medium']['step']} steps){replay_how}",
        "medium-expert": "medium and expert datasets concatenated",
    }
    cards = {}
    for level in args.levels:
        card = {
            **_env_card(scenario, args, env),
            "quality": level,
            "behaviour_policy": sources[level],
            "seed": args.seed,
            "reference_returns": {"random": random_return, "expert": expert_return},
            "random_episodes": args.random_episodes,
            "behaviour_training_steps": progress["steps"],
            "behaviour_training_wall_seconds": progress["wall_seconds"],
            "generation_wall_seconds": timings.get(level, 0.0)
            + (timings["medium"] + timings["expert"] if level == "medium-expert" else 0.0),
            "versions": _versions(),
            "command": command,
        }
        path = Path(args.out_dir) / f"{args.prefix}_{level.replace('-', '_')}.h5"
        cards[level] = write_mamujoco(path, raws[level], card, overwrite=args.overwrite)
        print(
            f"{path}: {cards[level]['n_episodes']} episodes, {cards[level]['n_transitions']} steps, return "
            f"{cards[level]['return_mean']:.1f} ± {cards[level]['return_std']:.1f} "
            f"(random {random_return:.1f}, expert {expert_return:.1f})",
            flush=True,
        )
    env.close()
    return cards


def convert(src: str, dst: str, obs_mode: str, overwrite: bool = False) -> dict[str, Any]:
    """Rewrite a generated file with its observations in ``obs_mode`` (no simulator needed)."""
    raw, card = read_raw(src)
    # write_native recomputes sizes, statistics and sha256 from the converted data.
    card["obs_mode"] = obs_mode
    card["converted_from"] = str(src)
    return write_mamujoco(dst, raw, card, overwrite=overwrite)


# ------------------------------------------------------------ bundled behaviour policies
def rollout_transitions(env: MaMuJoCoVecEnv, policy: Any, transitions: int, seed: int) -> RawEpisodes:
    """Whole episodes, ``env.num_envs`` at a time, until they hold at least ``transitions``
    steps; the surplus episodes of the last batch are dropped (the last one kept crosses
    the budget)."""
    parts, total, batch = [], 0, 0
    while total < transitions:
        raw = rollout(env, policy, env.num_envs, seed=seed + 7_919 * batch)
        batch += 1
        ends = total + np.cumsum(raw.lengths)
        keep = int(np.searchsorted(ends, transitions) + 1) if ends[-1] >= transitions else raw.lengths.size
        parts.append(raw.select(np.arange(keep)) if keep < raw.lengths.size else raw)
        total = int(ends[keep - 1])
    return RawEpisodes.concat(parts)


def export_policy(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The ``export`` command: a behaviour run's checkpoint(s) as a bundled policy directory.

    ``--level expert`` / ``medium``: the actor of ``--step``, its return measured over
    ``--episodes`` sampled episodes. ``--level medium-replay``: the replay definition
    (see :mod:`omiga_pl.generate.bundled`): uniform random actions for the run's warm-up
    steps, then for every checkpoint ``c`` before ``--step`` the actor of ``c`` for the
    ``next checkpoint - c`` steps the run trained from it, so a regenerated file mixes
    qualities in the proportions of TD3's replay buffer at the medium checkpoint (each
    interval's data comes from the snapshot at its start, not from the evolving learner).
    """
    from omiga_pl.generate.bundled import CARD, actor_from_sb3, file_sha256, joint_policy

    bdir, out = Path(args.behaviour_dir), Path(args.out)
    progress = json.loads((bdir / "progress.json").read_text())
    steps = [c["step"] for c in progress["checkpoints"]]
    if args.step not in steps:
        raise OmigaError(f"{bdir / 'progress.json'}: no checkpoint at step {args.step} (have {steps})")
    hp = progress.get("hyperparameters", {})
    noise_std = float(hp.get("action_noise_std", 0.1))
    out.mkdir(parents=True, exist_ok=True)
    schedule: list[dict[str, Any]] = []

    def add(step: int | None, weight: int) -> None:
        if step is None:
            schedule.append({"policy": None, "step": 0, "weight": weight})
            return
        name = f"policy_{step}.npz"
        actor_from_sb3(bdir, step).save(out / name, dtype=args.dtype)
        schedule.append({"policy": name, "step": step, "weight": weight, "sha256": file_sha256(out / name)})

    if args.level == "medium-replay":
        warmup = int(hp.get("learning_starts", 0))
        before = [s for s in steps if s < args.step]
        if warmup:
            add(None, warmup)
        for step, nxt in zip(before, [*before[1:], args.step], strict=True):
            if step >= warmup:
                add(step, nxt - step)
    else:
        add(args.step, 1)
    env = MaMuJoCoVecEnv(progress["scenario"], args.num_envs, obs_mode="reference")
    action_dim = int(np.prod(env.envs[0].single_agent_env.action_space.shape))
    card: dict[str, Any] = {
        "scenario": progress["scenario"],
        "level": args.level,
        "algorithm": f"stable-baselines3 {progress['algo'].upper()} (seed {progress['seed']})",
        "hyperparameters": hp,
        "training_steps": args.step,
        "behaviour_run_steps": progress["steps"],
        "seed": progress["seed"],
        "noise": "greedy action + Gaussian noise, clipped to [-1, 1] (as the run explored)",
        "noise_std": noise_std,
        "dtype": args.dtype,
        "action_dim": action_dim,
        "training_eval_return": next(
            (c["eval_return_mean"] for c in progress["checkpoints"] if c["step"] == args.step), None
        ),
        "schedule": schedule,
        "command": command,
    }
    if args.level != "medium-replay":
        from omiga_pl.generate.bundled import NumpyActor

        actor = NumpyActor.load(out / schedule[0]["policy"])
        sampled = joint_policy(actor, "gaussian", noise_std, action_dim)
        returns = rollout(env, sampled, args.episodes, args.seed)
        card["sampled_return"] = {
            "mean": float(returns.returns().mean()),
            "std": float(returns.returns().std()),
            "episodes": args.episodes,
        }
    if args.reference_from:
        ref = Path(args.reference_from)
        source = read_raw(ref)[1] if ref.suffix == ".h5" else json.loads((ref / CARD).read_text())
        card["reference_returns"] = source["reference_returns"]
        card["reference_returns_from"] = str(ref)
    elif args.level == "expert":
        random = rollout(env, joint_policy(None, "gaussian", 0.0, action_dim), args.episodes, args.seed + 1)
        card["reference_returns"] = {
            "random": float(random.returns().mean()),
            "expert": card["sampled_return"]["mean"],
        }
    else:
        raise OmigaError(
            "export: --reference-from (the expert policy or a dataset) is needed below expert level"
        )
    env.close()
    tmp = out / (CARD + ".tmp")
    tmp.write_text(json.dumps(card, indent=1) + "\n")
    tmp.replace(out / CARD)
    print(f"{out}: {len(schedule)} segment(s); " + json.dumps(card.get("sampled_return", {})), flush=True)
    return card


def sample_policies(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The ``sample`` command: a dataset of ``--transitions`` steps from bundled policies.

    Several ``--policy`` directories share the transitions equally (medium + expert =
    medium-expert); a directory's segments share its part by their weights.
    """
    from omiga_pl.generate.bundled import NumpyActor, joint_policy, read_policy_card, segment_transitions

    cards = [read_policy_card(Path(p)) for p in args.policy]
    scenarios = {c["scenario"] for c in cards}
    if len(scenarios) != 1:
        raise OmigaError(f"--policy: the policies are for different scenarios {sorted(scenarios)}")
    scenario = scenarios.pop()
    env = MaMuJoCoVecEnv(scenario, args.num_envs, obs_mode=args.obs_mode, agent_obsk=args.agent_obsk)
    share = segment_transitions([{"weight": 1}] * len(cards), args.transitions)
    parts, sources, start = [], [], time.perf_counter()
    for k, (policy_dir, card, budget) in enumerate(zip(args.policy, cards, share, strict=True)):
        std = card["noise_std"] if args.noise_std is None else args.noise_std
        counts = segment_transitions(card["schedule"], budget)
        for j, (segment, n) in enumerate(zip(card["schedule"], counts, strict=True)):
            if n == 0:
                continue
            file = segment["policy"]
            actor = None if file is None else NumpyActor.load(Path(policy_dir) / file)
            policy = joint_policy(actor, args.noise, std, card["action_dim"])
            parts.append(rollout_transitions(env, policy, n, seed=args.seed + 100_003 * k + 1_009 * j))
        sources.append(f"{policy_dir} ({card['level']}, {card['algorithm']}, {card['training_steps']} steps)")
    raw = RawEpisodes.concat(parts)
    levels_ = [c["level"] for c in cards]
    quality = "-".join(sorted(set(levels_), key=["medium", "expert"].index)) if len(cards) > 1 else levels_[0]
    noise_text = (
        "greedy action + Gaussian noise, clipped to [-1, 1]"
        if args.noise == "gaussian"
        else "tanh(pre-tanh greedy output + Gaussian noise), never exactly +-1"
    )
    out_card = {
        **_env_card(scenario, args, env),
        "quality": quality,
        "behaviour_policy": "bundled policies " + "; ".join(sources) + f"; sampling: {noise_text}",
        "action_noise": args.noise,
        "seed": args.seed,
        "reference_returns": cards[-1]["reference_returns"],
        "generation_wall_seconds": time.perf_counter() - start,
        "versions": _versions(),
        "command": command,
    }
    env.close()
    out = (
        Path(args.out)
        if args.out
        else Path("runs")
        / "data"
        / (
            f"{Path(args.policy[-1]).name}_{args.transitions}"
            f"{'_squashed' if args.noise == 'squashed' else ''}.h5"
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    full = write_mamujoco(out, raw, out_card, overwrite=args.overwrite)
    print(
        f"{out}: {full['n_episodes']} episodes, {full['n_transitions']} steps, return "
        f"{full['return_mean']:.1f} ± {full['return_std']:.1f} in {out_card['generation_wall_seconds']:.0f}s",
        flush=True,
    )
    return full


PROG = "python -m omiga_pl.generate mamujoco"


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """The ``levels`` / ``convert`` command line; ``prog`` is how it was invoked (it is
    recorded in the cards' ``command`` and names the errors)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lv = sub.add_parser("levels", help="random reference + expert/medium/medium-replay/medium-expert files")
    lv.add_argument("--behaviour-dir", required=True)
    lv.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS))
    lv.add_argument("--episodes", type=int, default=100, help="episodes per expert / medium file")
    lv.add_argument("--random-episodes", type=int, default=100)
    lv.add_argument(
        "--select-episodes",
        type=int,
        default=10,
        help="stochastic episodes per checkpoint when choosing the medium one (0: use the "
        "training run's evaluations)",
    )
    lv.add_argument(
        "--expert-select",
        choices=("training", "stochastic"),
        default="training",
        help="expert checkpoint: best training-run evaluation (default), or best over "
        "--select-episodes stochastic episodes per checkpoint (for runs whose deterministic "
        "evaluations mislead, e.g. Ant)",
    )
    lv.add_argument(
        "--replay-fraction",
        type=float,
        default=1.0,
        help="keep this seeded uniform fraction of the medium-replay episodes (0 < F <= 1; "
        "for a file small enough to bundle)",
    )
    lv.add_argument("--num-envs", type=int, default=10)
    lv.add_argument("--obs-mode", choices=("reference", "local"), default="reference")
    lv.add_argument("--agent-obsk", type=int, default=1)
    lv.add_argument("--seed", type=int, default=0)
    lv.add_argument("--out-dir", default="data")
    lv.add_argument("--prefix", required=True, help="file name prefix, e.g. mamujoco_hopper_3x1")
    lv.add_argument("--overwrite", action="store_true")
    ex = sub.add_parser("export", help="a behaviour run's checkpoint as a bundled policy directory")
    ex.add_argument("--behaviour-dir", required=True)
    ex.add_argument("--step", type=int, required=True, help="the checkpoint (medium-replay: the medium one)")
    ex.add_argument("--level", choices=LEVELS[:3], required=True)
    ex.add_argument("--out", required=True, help="the policy directory, e.g. data/policies/hopper_3x1_expert")
    ex.add_argument("--episodes", type=int, default=10, help="sampled episodes for the card's return")
    ex.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    ex.add_argument(
        "--reference-from", help="a dataset (.h5) or policy directory whose reference_returns to copy"
    )
    ex.add_argument("--num-envs", type=int, default=10)
    ex.add_argument("--seed", type=int, default=0)
    sp = sub.add_parser("sample", help="a dataset of --transitions steps from bundled policies")
    sp.add_argument("--policy", action="append", required=True, help="a policy directory (repeat: concat)")
    sp.add_argument("--transitions", type=int, default=1_000_000)
    sp.add_argument("--noise", choices=("gaussian", "squashed"), default="gaussian")
    sp.add_argument("--noise-std", type=float, default=None, help="default: the card's (the run's)")
    sp.add_argument("--out", help="default: runs/data/<policy name>_<transitions>.h5")
    sp.add_argument("--num-envs", type=int, default=10)
    sp.add_argument("--obs-mode", choices=("reference", "local"), default="reference")
    sp.add_argument("--agent-obsk", type=int, default=1)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--overwrite", action="store_true")
    cv = sub.add_parser("convert", help="switch a generated file's observation mode")
    cv.add_argument("src")
    cv.add_argument("dst")
    cv.add_argument("--obs-mode", choices=("reference", "local"), required=True)
    cv.add_argument("--overwrite", action="store_true")
    if argv and argv[0].startswith("--policy"):
        argv = ["sample", *argv]  # python -m omiga_pl.generate mamujoco --policy DIR ...
    args = parser.parse_args(argv)
    if args.command == "sample" and args.transitions < 1:
        parser.error(f"--transitions: expected an integer >= 1, found {args.transitions}")
    if args.command == "levels" and not 0.0 < args.replay_fraction <= 1.0:
        parser.error(f"--replay-fraction: expected a number in (0, 1], found {args.replay_fraction}")
    try:
        command = f"{prog} {shlex.join(argv)}"
        if args.command == "levels":
            levels(args, command=command)
        elif args.command == "export":
            export_policy(args, command=command)
        elif args.command == "sample":
            sample_policies(args, command=command)
        else:
            convert(args.src, args.dst, args.obs_mode, args.overwrite)
    except OmigaError as error:
        print(f"{prog.removeprefix('python -m ')}: error: {error}", file=sys.stderr)
        return 2
    return 0
