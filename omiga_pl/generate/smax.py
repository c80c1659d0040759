"""Generate an offline SMAX dataset in the native format: ``python -m omiga_pl.generate``.

Example (the bundled default)::

    python -m omiga_pl.generate --env smax --scenario 3m --quality medium \\
        --episodes 1000 --seed 0 --num-envs 64 --out data/smax_3m_medium.h5

(``python -m omiga_pl.generate mamujoco ...`` is the MaMuJoCo generator,
:mod:`omiga_pl.generate.mamujoco`.)

Behaviour policy (SMAX): JaxMARL's heuristic ally policy, where each agent's action is
replaced, independently per agent and per step with probability ``epsilon``, by an
action drawn uniformly from that agent's available actions. The quality level fixes
epsilon (:data:`QUALITY_EPSILON`); the levels were chosen from a measured sweep on 3m
(see data/README.md) so that their returns sit clearly apart:

* ``good``   epsilon 0.0: the pure heuristic (wins about half its 3m battles). It is the
  best policy available without training, not an expert: "good" is relative.
* ``medium`` epsilon 0.2: about halfway between random and heuristic in return.
* ``poor``   epsilon 0.5: about a quarter of the way; almost never wins.

The dataset card also records reference returns for score normalisation, measured with
the same environment: ``random`` (uniformly random available actions) and
``behaviour_best`` (the pure heuristic), each the mean over ``--reference-episodes``
episodes from seed streams independent of the dataset's. A normalised score is
``(R - random) / (behaviour_best - random)``.

The file is a pure function of the canonical command (recorded in the card) and the
versions of jaxmarl / jax / numpy / h5py (recorded too): rerunning it gives the same
bytes and sha256. ``--num-envs`` is part of that function (it sets how reset keys are
split), ``--overwrite`` is not.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

import omiga_pl
from omiga_pl.errors import ConfigError, OmigaError
from omiga_pl.rollout import EpisodeStats, episode_rows, rollout

PROG = "omiga_pl.generate"
QUALITY_EPSILON = {"good": 0.0, "medium": 0.2, "poor": 0.5}
# Independent seed streams: np.random.SeedSequence([seed, STREAM, batch]).
_DATA_RESET, _DATA_MIX, _RANDOM_RESET, _RANDOM_MIX, _HEURISTIC_RESET, _HEURISTIC_MIX = range(6)
BEHAVIOUR_POLICY = (
    "jaxmarl SMAX heuristic ally policy (create_heuristic_policy, team 0, attack_mode 'closest', "
    "per-agent memory carried through the episode; unavailable picks replaced by 'stop'); each "
    "agent's action is independently replaced with probability epsilon by a uniformly random "
    "available action"
)
REWARD_NOTE = (
    "SMAX team reward: fraction of total enemy health removed this step (summed over enemies, "
    "divided by their number) plus 1.0 when every enemy is dead and an ally is alive; "
    "a return of 2.0 is the maximum"
)


def _derive_seed(*path: int) -> int:
    """A 32-bit seed for one named stream, e.g. ``(seed, _DATA_RESET, batch)``."""
    return int(np.random.SeedSequence(list(path)).generate_state(1, dtype=np.uint32)[0])


def _behaviour_actions(env: Any, avail: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """[E, N] actions: heuristic, each replaced w.p. ``epsilon`` by a random available one."""
    # Uniform over available actions: argmax of uniform noise restricted to them. Both
    # draws happen whatever epsilon is, so the random stream does not depend on it.
    noise = rng.random(avail.shape)
    noise[~avail] = -1.0
    random_actions = noise.argmax(axis=-1)
    explore = rng.random(avail.shape[:2]) < epsilon
    if epsilon >= 1.0:
        return random_actions
    return np.where(explore, random_actions, env.heuristic_actions())


def rollout_batch(env: Any, reset_seed: int, epsilon: float, rng: np.random.Generator) -> EpisodeStats:
    """One recorded behaviour episode in each of the E slots (see :func:`omiga_pl.rollout.rollout`)."""
    return rollout(
        env,
        lambda result: _behaviour_actions(env, result.avail_actions, epsilon, rng),
        reset_seed,
        record=True,
    )


def collect(
    env: Any,
    episodes: int,
    seed: int,
    epsilon: float,
    label: str,
    reset_stream: int = _DATA_RESET,
    mix_stream: int = _DATA_MIX,
) -> dict[str, np.ndarray]:
    """``episodes`` behaviour episodes, as native-format arrays (:func:`omiga_pl.rollout.episode_rows`)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, mix_stream]))
    parts, done, start = [], 0, time.perf_counter()
    for batch_index in range((episodes + env.num_envs - 1) // env.num_envs):
        batch = rollout_batch(env, _derive_seed(seed, reset_stream, batch_index), epsilon, rng)
        keep = min(env.num_envs, episodes - done)
        parts.append(episode_rows(batch, keep))
        done += keep
        elapsed = time.perf_counter() - start
        print(f"{PROG}: {label}: {done}/{episodes} episodes ({elapsed:.1f} s)", file=sys.stderr, flush=True)
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def reference_returns(env: Any, episodes: int, seed: int) -> dict[str, Any]:
    """Mean return and win rate of pure-random and pure-heuristic play, for normalisation."""
    out: dict[str, Any] = {}
    for name, epsilon, streams in (
        ("random", 1.0, (_RANDOM_RESET, _RANDOM_MIX)),
        ("behaviour_best", 0.0, (_HEURISTIC_RESET, _HEURISTIC_MIX)),
    ):
        data = collect(env, episodes, seed, epsilon, f"reference {name}", *streams)
        returns = np.add.reduceat(data["rewards"].astype(np.float64), _starts(data["episode_lengths"]))
        out[name] = {
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "win_rate": float(data["episode_won"].mean()),
        }
    return out


def _starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def canonical_command(args: argparse.Namespace) -> str:
    """The command line that reproduces the file (``--overwrite`` left out: same bytes)."""
    parts = [
        "python",
        "-m",
        "omiga_pl.generate",
        "--env",
        args.env,
        "--scenario",
        args.scenario,
        "--quality",
        args.quality,
        "--episodes",
        str(args.episodes),
        "--seed",
        str(args.seed),
        "--num-envs",
        str(args.num_envs),
    ]
    if args.max_steps is not None:
        parts += ["--max-steps", str(args.max_steps)]
    if args.reference_episodes != DEFAULT_REFERENCE_EPISODES:
        parts += ["--reference-episodes", str(args.reference_episodes)]
    parts += ["--out", str(args.out)]
    return shlex.join(parts)


DEFAULT_REFERENCE_EPISODES = 1000


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), found {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), found {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Generate an offline multi-agent dataset (native HDF5 + sidecar card).",
    )
    parser.add_argument("--env", choices=["smax"], default="smax", help="environment family")
    parser.add_argument("--scenario", required=True, help="SMAX map name, e.g. 3m, 2s3z, 5m_vs_6m")
    parser.add_argument(
        "--quality",
        choices=sorted(QUALITY_EPSILON),
        required=True,
        help="behaviour policy level: epsilon " + ", ".join(f"{k} {v}" for k, v in QUALITY_EPSILON.items()),
    )
    parser.add_argument("--episodes", type=_positive_int, default=1000, help="episodes to record")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of every random stream")
    parser.add_argument("--num-envs", type=_positive_int, default=64, help="battles run side by side")
    parser.add_argument("--max-steps", type=_positive_int, default=None, help="episode limit (SMAX: 100)")
    parser.add_argument(
        "--reference-episodes",
        type=_positive_int,
        default=DEFAULT_REFERENCE_EPISODES,
        help="episodes of pure-random and of pure-heuristic play for the reference returns",
    )
    parser.add_argument("--out", type=Path, required=True, help="destination .h5 file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    return parser


def generate(args: argparse.Namespace) -> dict[str, Any]:
    """Collect the dataset described by ``args``, write it, and return its full card."""
    from omiga_pl.data.formats.native import EpisodeDataset, write_native
    from omiga_pl.envs.smax import SMAXVecEnv, available_scenarios, jaxmarl_version

    # Cheap checks first: nothing below is worth a jit compile if the output is refused.
    if args.out.exists() and not args.overwrite:
        raise OmigaError(f"{args.out}: destination exists; pass --overwrite to replace it")
    if args.out.is_dir():
        raise OmigaError(f"{args.out}: is a directory; --out expects a file path")
    scenarios = available_scenarios()
    if args.scenario not in scenarios:
        raise ConfigError(f"--scenario: expected one of {scenarios}, found {args.scenario!r}")

    start = time.perf_counter()
    env = SMAXVecEnv(args.scenario, num_envs=args.num_envs, max_steps=args.max_steps)
    compile_s = time.perf_counter() - start
    print(f"{PROG}: built {args.env} {args.scenario} x{args.num_envs} ({compile_s:.1f} s)", file=sys.stderr)
    epsilon = QUALITY_EPSILON[args.quality]
    start = time.perf_counter()
    arrays = collect(env, args.episodes, args.seed, epsilon, f"{args.quality} data")
    reference = reference_returns(env, args.reference_episodes, args.seed)
    collect_s = time.perf_counter() - start
    data = EpisodeDataset(
        observations=arrays["observations"],
        actions=arrays["actions"],
        rewards=arrays["rewards"],
        terminations=arrays["terminations"],
        truncations=arrays["truncations"],
        episode_lengths=arrays["episode_lengths"],
        states=arrays["states"],
        avail_actions=arrays["avail_actions"],
        episode_won=arrays["episode_won"],
    )
    card = {
        "env_family": args.env,
        "env_id": "HeuristicEnemySMAX",
        "env_version": jaxmarl_version(),
        "scenario": args.scenario,
        "episode_limit": env.spec.episode_limit,
        "behaviour_policy": BEHAVIOUR_POLICY,
        "quality": args.quality,
        "quality_note": (
            "levels are epsilon-mixtures of the untrained jaxmarl heuristic; 'good' is that heuristic "
            "alone, the best behaviour available without training, not an expert"
        ),
        "epsilon": epsilon,
        "seed": args.seed,
        "num_envs": args.num_envs,
        "command": canonical_command(args),
        "reference_returns": {
            "random": reference["random"]["return_mean"],
            "behaviour_best": reference["behaviour_best"]["return_mean"],
        },
        "reference_details": reference,
        "reference_episodes": args.reference_episodes,
        "reference_note": (
            "mean undiscounted team return over reference_episodes episodes in the same environment: "
            "'random' = uniformly random available actions, 'behaviour_best' = the pure heuristic "
            "(epsilon 0), seed streams independent of the dataset's; normalised score = "
            "(R - random) / (behaviour_best - random)"
        ),
        "reward": REWARD_NOTE,
        "termination_note": (
            "terminations: a team was wiped out (win, loss or draw); truncations: the episode "
            "limit was reached first (bootstrap); observations/states/avail_actions include each "
            "episode's final row"
        ),
        "versions": {
            "omiga_pl": omiga_pl.__version__,
            "jaxmarl": jaxmarl_version(),
            "jax": version("jax"),
            "numpy": np.__version__,
            "h5py": version("h5py"),
        },
    }
    full_card = write_native(args.out, data, card, overwrite=args.overwrite)
    full_card["_timing"] = {"build_s": compile_s, "collect_s": collect_s}
    return full_card


def main(argv: list[str] | None = None) -> int:
    """The SMAX command line (``python -m omiga_pl.generate --env smax ...``)."""
    args = build_parser().parse_args(argv)
    try:
        card = generate(args)
    except OmigaError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    timing = card["_timing"]
    print(
        f"{args.out}: {card['n_episodes']} episodes, {card['n_transitions']} transitions, "
        f"win rate {card['win_rate']:.3f}, return {card['return_mean']:.3f} +- {card['return_std']:.3f} "
        f"(reference random {card['reference_returns']['random']:.3f}, heuristic "
        f"{card['reference_returns']['behaviour_best']:.3f}); build {timing['build_s']:.1f} s, "
        f"collect {timing['collect_s']:.1f} s; sha256 {card['sha256']}"
    )
    return 0
