"""MPE behaviour policies: parameter-shared PPO (stable-baselines3) on the team reward.

Every agent of every env copy is one sub-environment of an SB3 ``VecEnv``
(:class:`AgentVecEnv`), all sharing one policy network that sees the agent's own
observation (what the offline datasets store) and receives the team reward of
:class:`omiga_pl.envs.pettingzoo_in.PettingZooVecEnv` (the mean of the agents' rewards).
This is independent PPO with parameter sharing, a standard and strong baseline on
cooperative MPE. Each copy auto-resets when its episode ends; a time-limit end is
reported as ``TimeLimit.truncated`` so PPO bootstraps it.

:func:`train` saves a checkpoint every ``checkpoint_every`` agent-steps and scores it on
``eval_episodes`` episodes with sampled actions (as the datasets are sampled), in
``progress.json``; the level generator (:mod:`omiga_pl.generate.mpe`) picks from those.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from omiga_pl.envs.pettingzoo_in import PettingZooVecEnv
from omiga_pl.io import atomic_output

PPO_HYPERPARAMETERS = {
    "n_steps": 100,
    "batch_size": 600,
    "n_epochs": 10,
    "learning_rate": 7e-4,
    "gamma": 0.95,
    "gae_lambda": 0.95,
    "ent_coef": 0.01,
    "clip_range": 0.2,
    "policy_kwargs": {"net_arch": [64, 64]},
}


class AgentVecEnv:
    """``copies`` env copies x N agents as one SB3 VecEnv of N * copies sub-envs.

    Sub-env ``c * N + i`` is agent i of copy c. Observations [copies * N, O] float32;
    actions [copies * N] ints; every agent of a copy gets that copy's team reward.
    """

    def __init__(self, scenario: str, copies: int, seed: int, env_kwargs: dict | None = None) -> None:
        from gymnasium import spaces
        from stable_baselines3.common.vec_env import VecEnv

        self.envs = [PettingZooVecEnv(scenario, num_envs=1, env_kwargs=env_kwargs) for _ in range(copies)]
        dims = self.envs[0].spec.dims
        self.n_agents, self.copies = dims.n_agents, copies
        self._rng = np.random.default_rng(seed)
        self._results = [None] * copies
        self._actions: np.ndarray | None = None
        obs_space = spaces.Box(-np.inf, np.inf, (dims.obs_dim,), np.float32)
        VecEnv.__init__(self, copies * dims.n_agents, obs_space, spaces.Discrete(dims.action_dim))  # type: ignore[arg-type]

    def _reset_copy(self, c: int) -> np.ndarray:
        self._results[c] = self.envs[c].reset(int(self._rng.integers(2**31)))
        return self._results[c].observations[0]

    def reset(self) -> np.ndarray:
        return np.concatenate([self._reset_copy(c) for c in range(self.copies)])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.copies, 1, self.n_agents)

    def step_wait(self) -> tuple:
        obs, rewards, dones, infos = [], [], [], []
        for c, env in enumerate(self.envs):
            result = env.step(self._actions[c])
            rewards += [float(result.rewards[0])] * self.n_agents
            if result.done[0]:
                infos += [
                    {
                        "terminal_observation": result.observations[0, i],
                        "TimeLimit.truncated": bool(result.truncated[0]),
                    }
                    for i in range(self.n_agents)
                ]
                obs.append(self._reset_copy(c))
                dones += [True] * self.n_agents
            else:
                infos += [{} for _ in range(self.n_agents)]
                obs.append(result.observations[0])
                dones += [False] * self.n_agents
        return np.concatenate(obs), np.asarray(rewards, np.float32), np.asarray(dones), infos

    # The rest of SB3's VecEnv API, for what PPO calls.
    def close(self) -> None:
        for env in self.envs:
            env.close()

    def get_attr(self, name: str, indices: Any = None) -> list:
        return [getattr(self, name, None)] * self.num_envs

    def set_attr(self, name: str, value: Any, indices: Any = None) -> None:
        setattr(self, name, value)

    def env_method(self, name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list:
        return [None] * self.num_envs

    def env_is_wrapped(self, wrapper_class: Any, indices: Any = None) -> list[bool]:
        return [False] * self.num_envs

    def seed(self, seed: int | None = None) -> list:
        return [None] * self.num_envs


def _vec_env_class() -> type:
    from stable_baselines3.common.vec_env import VecEnv

    # AgentVecEnv must subclass SB3's VecEnv, imported lazily (SB3 pulls in torch).
    return type("AgentVecEnv", (AgentVecEnv, VecEnv), {})


def sb3_act(model: Any, observations: np.ndarray, deterministic: bool = False) -> np.ndarray:
    """[E, N] actions of a shared-parameter model for observations [E, N, O]."""
    e, n, o = observations.shape
    actions, _ = model.predict(observations.reshape(e * n, o), deterministic=deterministic)
    return np.asarray(actions).reshape(e, n)


def score(model: Any, scenario: str, episodes: int, seed: int, env_kwargs: dict | None = None) -> list[float]:
    """Team returns of ``episodes`` episodes with sampled actions (one vectorised batch)."""
    import torch

    from omiga_pl.rollout import rollout

    torch.manual_seed(seed)
    env = PettingZooVecEnv(scenario, num_envs=episodes, env_kwargs=env_kwargs)
    stats = rollout(env, lambda r: sb3_act(model, r.observations), seed=seed)
    env.close()
    return [float(x) for x in stats.returns]


def train(
    out_dir: Path,
    scenario: str,
    total_steps: int,
    checkpoint_every: int,
    seed: int,
    copies: int = 6,
    eval_episodes: int = 50,
    env_kwargs: dict | None = None,
) -> dict[str, Any]:
    """Train, checkpoint and score; returns the progress record (also ``progress.json``).

    Steps count agent-steps (sub-env steps); checkpoints ``ckpt_<step>.zip`` include the
    untrained policy at step 0.
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    venv = _vec_env_class()(scenario, copies, seed, env_kwargs)
    model = PPO("MlpPolicy", venv, seed=seed, verbose=0, device="cpu", **PPO_HYPERPARAMETERS)
    progress: dict[str, Any] = {
        "scenario": scenario,
        "algo": "PPO (stable-baselines3), one policy shared by all agents, team reward",
        "hyperparameters": PPO_HYPERPARAMETERS,
        "seed": seed,
        "copies": copies,
        "env_kwargs": env_kwargs or {},
        "total_steps": total_steps,
        "eval_episodes": eval_episodes,
        "checkpoints": {},
    }
    start = time.perf_counter()

    def checkpoint(step: int) -> None:
        model.save(out_dir / f"ckpt_{step}.zip")
        returns = score(model, scenario, eval_episodes, seed=10_000 + step, env_kwargs=env_kwargs)
        progress["checkpoints"][str(step)] = {
            "return_mean": float(np.mean(returns)),
            "return_std": float(np.std(returns)),
        }
        progress["seconds"] = time.perf_counter() - start
        with atomic_output(out_dir / "progress.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(progress, indent=1))
        print(f"step {step}: return {np.mean(returns):.2f} ({progress['seconds']:.0f} s)", flush=True)

    class Every(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next = checkpoint_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                checkpoint(self.next)
                self.next += checkpoint_every
            return True

    checkpoint(0)
    model.learn(total_timesteps=total_steps, callback=Every())
    return progress
