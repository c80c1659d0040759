"""Run the PettingZoo wrapper on every installed ParallelEnv we know of; print a Markdown table.

    OMP_NUM_THREADS=1 python scripts/pettingzoo_envs.py

For each id: build ``PettingZooVecEnv`` with 2 copies (episode limit capped at
``--max-steps``), play one episode per copy with uniformly random available actions
(or uniform Box actions), then run ``pettingzoo.test.parallel_api_test`` on the wrapper
seen as a ParallelEnv again (``VecEnvParallel``). Reports sizes, state source, mean
return, and the one-line error when an env cannot be wrapped or is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np

IDS = [
    "mpe2.simple_spread_v3",
    "mpe2.simple_reference_v3",
    "mpe2.simple_speaker_listener_v4",
    "mpe2.simple_push_v3",
    "mpe2.simple_adversary_v3",
    "mpe2.simple_tag_v3",
    "mpe2.simple_world_comm_v3",
    "mpe2.simple_crypto_v3",
    "mpe2.simple_v3",
    "mpe2.simple_line_v1",
    "mpe2.simple_formation_v1",
    "mpe2.collect_treasure_v1",
    "butterfly/pistonball_v6",
    "butterfly/cooperative_pong_v6",
    "butterfly/knights_archers_zombies_v11",
    "sisl/multiwalker_v9",
    "sisl/pursuit_v5",
    "classic/rps_v2",
    "classic/tictactoe_v3",
]


def try_env(env_id: str, max_steps: int) -> dict:
    from pettingzoo.test import parallel_api_test

    from omiga_pl.envs.pettingzoo_in import PettingZooVecEnv
    from omiga_pl.envs.pettingzoo_out import VecEnvParallel
    from omiga_pl.errors import ConfigError
    from omiga_pl.rollout import rollout

    row: dict = {"id": env_id}
    start = time.perf_counter()
    try:
        try:
            try:
                env = PettingZooVecEnv(env_id, num_envs=2)
            except ConfigError as error:
                if "env.episode_limit" not in str(error):
                    raise
                env = PettingZooVecEnv(env_id, num_envs=2, max_steps=max_steps)  # no default limit
                row["note"] = "episode limit set (no max_cycles default)"
            if env.max_steps > max_steps:
                env = PettingZooVecEnv(env_id, num_envs=2, max_steps=max_steps)
        except Exception as error:
            row["status"] = f"not wrapped: {str(error).splitlines()[0][:160]}"
            return row
        dims = env.spec.dims
        rng = np.random.default_rng(0)

        def random_policy(result):
            if result.avail_actions is None:
                return rng.uniform(-1, 1, (2, dims.n_agents, dims.action_dim))
            noise = rng.random(result.avail_actions.shape)
            noise[~result.avail_actions] = -1
            return noise.argmax(-1)

        stats = rollout(env, random_policy, seed=0)
        row.update(
            agents=dims.n_agents,
            obs=dims.obs_dim,
            state=f"{dims.state_dim} ({env.state_source})",
            actions=f"{dims.action_type} {dims.action_dim}",
            limit=env.spec.episode_limit,
            random_return=f"{stats.returns.mean():.2f}",
            length=f"{stats.lengths.mean():.0f}",
        )
        with contextlib.redirect_stdout(io.StringIO()):
            parallel_api_test(
                VecEnvParallel(PettingZooVecEnv(env_id, num_envs=1, max_steps=env.max_steps)), 50
            )
        row["status"] = "ok (random episodes + parallel_api_test of the round trip)"
    except Exception as error:
        row["status"] = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
    finally:
        row["seconds"] = f"{time.perf_counter() - start:.1f}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-steps", type=int, default=200, help="cap on each env's episode limit")
    args = parser.parse_args()
    cols = [
        "id",
        "agents",
        "obs",
        "state",
        "actions",
        "limit",
        "random_return",
        "length",
        "status",
        "seconds",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for env_id in IDS:
        row = try_env(env_id, args.max_steps)
        print("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |", flush=True)


if __name__ == "__main__":
    main()
