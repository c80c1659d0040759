"""Env steps per second of behaviour-policy training (omiga_pl.generate.behaviour's env).

    python benchmarks/behaviour_speed.py [--scenario Hopper-3x1] [--steps 2000]

Prints, for the simulator alone and for each stable-baselines3 learner with the settings
the script uses (plus SAC at batch 100), the env steps per second once learning has
started (after ``learning_starts`` warm-up steps), with one torch thread. Pin it to one
core (``taskset -c 0``) to compare learners as the script runs them side by side.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from omiga_pl.generate.behaviour import JointTaskEnv, algo_kwargs, behaviour_algo_class, hyperparameters


def simulator_rate(scenario: str, steps: int) -> float:
    env = JointTaskEnv(scenario)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def learner_rate(scenario: str, algo: str, steps: int, **overrides: int) -> float:
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    joint_env = JointTaskEnv(scenario)
    venv = VecNormalize(DummyVecEnv([lambda: joint_env]), norm_obs=True, norm_reward=algo == "ppo")
    progress = {"hyperparameters": {**hyperparameters(algo, 100_000), **overrides}}
    if algo != "ppo":
        progress["hyperparameters"]["learning_starts"] = 1000
    kwargs = algo_kwargs(progress, joint_env.action_space.shape[0])
    model = behaviour_algo_class(algo)("MlpPolicy", venv, seed=0, device="cpu", **kwargs)
    model.learn(1500)  # past the warm-up: the timed part runs gradient steps
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="Hopper-3x1")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.scenario}: env steps/s (one torch thread)")
    print(f"  simulator + recording only: {simulator_rate(args.scenario, args.steps * 2):.0f}")
    for label, algo, overrides in (
        ("TD3 (batch 100)", "td3", {}),
        ("SAC (batch 256)", "sac", {}),
        ("SAC (batch 100)", "sac", {"batch_size": 100}),
        ("PPO (SB3 defaults)", "ppo", {}),
    ):
        print(f"  {label}: {learner_rate(args.scenario, algo, args.steps, **overrides):.0f}", flush=True)


if __name__ == "__main__":
    main()
