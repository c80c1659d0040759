"""MaMuJoCo behaviour policies (stable-baselines3): training, resuming, loading, sampling.

``scripts/train_behaviour.py`` is the command line over :func:`train`; the level generator
(:mod:`omiga_pl.generate.mamujoco`) loads checkpoints with :func:`sb3_policy`.

The policy sees the joint task: observation = the single-agent gym observation
(``env.state()`` of the MaMuJoCo env), action = the joint actuator vector, which is split
onto the agents with gymnasium-robotics' own ``map_global_action_to_local_actions``
before every step, so the multi-agent env is what actually runs. Every training
transition is recorded (global state, local observations, joint action, reward, flags):
those are the "replay" data that medium-replay datasets are cut from.

Output directory layout (``--out``):

* ``ckpt_<steps>.zip`` + ``vecnorm_<steps>.pkl``: model and observation normaliser,
  every ``--checkpoint-every`` env steps;
* ``replay_<steps>.npz``: the episodes completed since the previous checkpoint;
* ``progress.json``: steps done, wall seconds, and per checkpoint the deterministic
  evaluation return (``--eval-episodes`` episodes in the multi-agent env).

Running the same command again continues from the last checkpoint (the unfinished
episode at the interruption is dropped); a larger ``--total-steps`` extends a finished run.

Algorithms: ``td3`` (default; settings in :func:`hyperparameters`), ``sac`` and
``ppo``. Off-policy runs also keep ``replay_buffer.pkl`` (the learner's whole buffer,
rewritten at every checkpoint), so a resumed run learns from the same buffer.

Measured for the bundled datasets (TD3, seed 0, one torch thread, ``nice -n 5``, two
runs side by side on 2 shared CPU cores, plus level generation and test runs at times;
wall = learning time, evaluation excluded; returns = 5 greedy evaluation episodes):

* Hopper-3x1: 240,000 steps in 2,337 s (~103 env steps/s overall; 99/s after the
  10k uniform warm-up steps). 733 @ 60k, 2010 @ 120k, 2509 @ 180k, 3366 @ 200k,
  3489 @ 210k, 2580 @ 240k::

      nice -n 5 python scripts/train_behaviour.py --scenario Hopper-3x1 --algo td3 \
          --total-steps 400000 --checkpoint-every 10000 --out behaviour/Hopper-3x1

  (stopped after the 240k checkpoint: the expert level was reached; the same command
  resumes it.)
* HalfCheetah-6x1: 140,000 steps in 3,026 s (~46 steps/s, sharing the cores with two
  other jobs). 4202 @ 60k, 5641 @ 100k, 6082 @ 120k, 6838 @ 140k (stopped there; run
  with ``--total-steps 400000 --checkpoint-every 20000``).
* Ant-2x4: 360,000 steps in 5,852 s (~62 steps/s). 619 @ 180k, 1375 @ 200k, 1680 @
  260k, 1841 @ 320k, 2594 @ 340k, 1924 @ 360k (stopped for time; run with
  ``--total-steps 500000 --checkpoint-every 20000``): not yet a fully trained Ant.

Speed per learner: ``taskset -c 1 python benchmarks/behaviour_speed.py`` (Hopper, one
torch thread, the other core busy with a behaviour run): simulator + recording 2,024 env
steps/s; TD3 77, SAC (batch 256) 34, SAC (batch 100) 46, PPO (SB3 defaults) 405. The
gradient steps dominate: TD3 is 2.3x SAC's speed at D4RL's settings. PPO is fastest per
step but learned far slower here (Hopper 1895 at 200k steps, Ant 453 at 600k; the
first bundled files), which is why the bundled data now comes from TD3.
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from omiga_pl.envs.mamujoco import MaMuJoCoVecEnv
from omiga_pl.errors import ConfigError
from omiga_pl.rollout import rollout


class JointTaskEnv(gym.Env):
    """The MaMuJoCo task seen as one agent; records every transition it makes."""

    def __init__(self, scenario: str, max_steps: int = 1000, agent_obsk: int = 1) -> None:
        self.ma = MaMuJoCoVecEnv(scenario, 1, obs_mode="local", agent_obsk=agent_obsk, max_steps=max_steps)
        raw = self.ma.envs[0]
        self.raw = raw
        self.observation_space = raw.single_agent_env.observation_space
        self.action_space = raw.single_agent_env.action_space
        self.max_steps = max_steps
        self.finished: list[dict[str, np.ndarray]] = []
        self._episode: dict[str, list] | None = None

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ma.global_states()[0], self.ma.local_observations()[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        self.raw.reset(seed=seed)
        self._t = 0
        g, loc = self._snapshot()
        self._episode = {"global_states": [g], "local_observations": [loc], "actions": [], "rewards": []}
        return g.astype(np.float64), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        local = self.raw.map_global_action_to_local_actions(action)
        _, rewards, terms, _, _ = self.raw.step(local)
        agent = self.ma.agents[0]
        reward, terminated = float(rewards[agent]), bool(terms[agent])
        self._t += 1
        truncated = self._t >= self.max_steps and not terminated
        g, loc = self._snapshot()
        ep = self._episode
        ep["global_states"].append(g)
        ep["local_observations"].append(loc)
        ep["actions"].append(action.astype(np.float32))
        ep["rewards"].append(reward)
        if terminated or truncated:
            self.finished.append(
                {
                    "global_states": np.stack(ep["global_states"]),
                    "local_observations": np.stack(ep["local_observations"]),
                    "joint_actions": np.stack(ep["actions"]),
                    "rewards": np.asarray(ep["rewards"], dtype=np.float32),
                    "terminated": np.asarray(terminated),
                }
            )
        return g.astype(np.float64), reward, terminated, truncated, {}


ALGOS = ("td3", "sac", "ppo")


def hyperparameters(algo: str, total_steps: int) -> dict[str, Any]:
    """Settings that differ from stable-baselines3's defaults, recorded in progress.json.

    TD3 follows Fujimoto et al. (2018): two 256-unit layers, batch 100, learning rate 1e-3,
    Gaussian exploration noise 0.1, 10k uniform-random warm-up steps. SAC follows D4RL's
    behaviour agents (256-256, batch 256). PPO keeps SB3's defaults. Off-policy replay
    buffers hold the whole planned run (at most 1M transitions); a run extended past
    that forgets its oldest transitions first.
    """
    buffer_size = min(1_000_000, total_steps)
    if algo == "td3":
        return {
            "net_arch": [256, 256],
            "batch_size": 100,
            "learning_rate": 1e-3,
            "learning_starts": 10_000,
            "action_noise_std": 0.1,
            "buffer_size": buffer_size,
        }
    if algo == "sac":
        return {
            "net_arch": [256, 256],
            "batch_size": 256,
            "learning_starts": 10_000,
            "buffer_size": buffer_size,
        }
    return {}


def algo_kwargs(progress: dict[str, Any], action_dim: int) -> dict[str, Any]:
    """Constructor arguments for a fresh learner from the recorded hyperparameters."""
    hp = dict(progress.get("hyperparameters", {}))
    kwargs: dict[str, Any] = {}
    if "net_arch" in hp:
        kwargs["policy_kwargs"] = {"net_arch": hp.pop("net_arch")}
    noise_std = hp.pop("action_noise_std", None)
    if noise_std is not None:
        from stable_baselines3.common.noise import NormalActionNoise

        kwargs["action_noise"] = NormalActionNoise(np.zeros(action_dim), np.full(action_dim, noise_std))
    kwargs.update(hp)
    return kwargs


def save_episodes(path: Path, episodes: list[dict[str, np.ndarray]]) -> None:
    """Episodes back to back with their lengths (rows: L + 1 per episode)."""
    if not episodes:
        np.savez_compressed(path, lengths=np.zeros(0, dtype=np.int64))
        return
    np.savez_compressed(
        path,
        lengths=np.asarray([len(e["rewards"]) for e in episodes], dtype=np.int64),
        global_states=np.concatenate([e["global_states"] for e in episodes]).astype(np.float32),
        local_observations=np.concatenate([e["local_observations"] for e in episodes]).astype(np.float32),
        joint_actions=np.concatenate([e["joint_actions"] for e in episodes]),
        rewards=np.concatenate([e["rewards"] for e in episodes]),
        terminated=np.asarray([bool(e["terminated"]) for e in episodes]),
    )


def evaluate(model: Any, vecnorm: Any, scenario: str, episodes: int, seed: int) -> list[float]:
    """Deterministic returns in the multi-agent env, joint actions split onto agents."""
    env = MaMuJoCoVecEnv(scenario, episodes, obs_mode="local")

    def act(_: Any) -> np.ndarray:
        g = env.global_states().astype(np.float64)
        joint, _ = model.predict(vecnorm.normalize_obs(g), deterministic=True)
        return np.stack([env.split_joint_actions(j) for j in joint])

    returns = rollout(env, act, seed).returns
    env.close()
    return returns.tolist()


def behaviour_algo_class(algo: str) -> Any:
    """The stable-baselines3 class of a behaviour run's ``algo`` ("td3", "sac" or "ppo")."""
    from stable_baselines3 import PPO, SAC, TD3

    return {"ppo": PPO, "sac": SAC, "td3": TD3}[algo]


def sb3_policy(behaviour_dir: Path, step: int, deterministic: bool = False) -> Any:
    """A joint-action policy from ``ckpt_<step>.zip`` and its observation normaliser.

    Stochastic actions are the policy's own samples for PPO and SAC (drawn from torch's
    generator) and, for TD3, whose policy is deterministic, the greedy action plus the
    Gaussian exploration noise the run trained with (drawn from the rollout's ``rng``),
    clipped to [-1, 1].
    """
    progress = json.loads((behaviour_dir / "progress.json").read_text())
    model = behaviour_algo_class(progress["algo"]).load(str(behaviour_dir / f"ckpt_{step}.zip"), device="cpu")
    noise_std = (
        0.0 if deterministic else float(progress.get("hyperparameters", {}).get("action_noise_std", 0.0))
    )
    with open(behaviour_dir / f"vecnorm_{step}.pkl", "rb") as handle:
        vecnorm = pickle.load(handle)

    def act(global_states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        obs = np.clip(
            (global_states - vecnorm.obs_rms.mean) / np.sqrt(vecnorm.obs_rms.var + vecnorm.epsilon),
            -vecnorm.clip_obs,
            vecnorm.clip_obs,
        )
        actions, _ = model.predict(obs.astype(np.float32), deterministic=deterministic)
        if noise_std > 0.0:
            actions = actions + rng.normal(0.0, noise_std, actions.shape)
        return np.clip(actions, -1.0, 1.0)

    return act


def new_progress(scenario: str, algo: str, seed: int, total_steps: int) -> dict[str, Any]:
    """The ``progress.json`` of a run that has not started."""
    return {
        "scenario": scenario,
        "algo": algo,
        "seed": seed,
        "hyperparameters": hyperparameters(algo, total_steps),
        "steps": 0,
        "wall_seconds": 0.0,
        "checkpoints": [],
    }


def train(
    out: Path,
    scenario: str = "Hopper-3x1",
    algo: str = "td3",
    total_steps: int = 1_000_000,
    checkpoint_every: int = 25_000,
    eval_episodes: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Train (or resume) the run in ``out`` up to ``total_steps`` env steps; returns its progress.

    A run directory keeps the scenario and algorithm it started with: another one is a
    :class:`~omiga_pl.errors.ConfigError` naming ``progress.json``'s field.
    """
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    out.mkdir(parents=True, exist_ok=True)
    progress_path = out / "progress.json"
    progress = (
        json.loads(progress_path.read_text())
        if progress_path.exists()
        else new_progress(scenario, algo, seed, total_steps)
    )
    for key, value in (("algo", algo), ("scenario", scenario)):
        if progress[key] != value:
            raise ConfigError(
                f"{progress_path}: field '{key}': this run directory was started with "
                f"--{key} {progress[key]}, found --{key} {value} (use another --out)"
            )
    joint_env = JointTaskEnv(scenario)
    venv = DummyVecEnv([lambda: joint_env])
    algo_cls = behaviour_algo_class(progress["algo"])
    buffer_path = out / "replay_buffer.pkl"
    if progress["steps"]:
        step = progress["steps"]
        vecnorm = VecNormalize.load(str(out / f"vecnorm_{step}.pkl"), venv)
        model = algo_cls.load(str(out / f"ckpt_{step}.zip"), env=vecnorm)
        if hasattr(model, "load_replay_buffer"):
            # Off-policy learners continue from their whole replay buffer, not an empty one.
            model.load_replay_buffer(str(buffer_path))
        print(f"resuming {out} at {step} steps", flush=True)
    else:
        # Normalised observations (not rewards: the recorded rewards stay raw anyway).
        vecnorm = VecNormalize(venv, norm_obs=True, norm_reward=algo == "ppo")
        model = algo_cls(
            "MlpPolicy",
            vecnorm,
            seed=seed,
            verbose=0,
            device="cpu",
            **algo_kwargs(progress, joint_env.action_space.shape[0]),
        )
    while progress["steps"] < total_steps:
        chunk = min(checkpoint_every, total_steps - progress["steps"])
        start = time.perf_counter()
        model.learn(chunk, reset_num_timesteps=False)
        progress["wall_seconds"] += time.perf_counter() - start
        step = int(model.num_timesteps)
        progress["steps"] = step
        model.save(str(out / f"ckpt_{step}.zip"))
        vecnorm.save(str(out / f"vecnorm_{step}.pkl"))
        save_episodes(out / f"replay_{step}.npz", joint_env.finished)
        if hasattr(model, "save_replay_buffer"):
            tmp_buffer = buffer_path.with_suffix(".tmp.pkl")
            model.save_replay_buffer(str(tmp_buffer))
            tmp_buffer.replace(buffer_path)
        n_done = len(joint_env.finished)
        joint_env.finished = []
        returns = evaluate(model, vecnorm, scenario, eval_episodes, seed=10_000 + step)
        progress["checkpoints"].append(
            {
                "step": step,
                "eval_return_mean": float(np.mean(returns)),
                "eval_return_std": float(np.std(returns)),
                "train_episodes": n_done,
                "wall_seconds": progress["wall_seconds"],
            }
        )
        tmp = progress_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(progress, indent=1))
        tmp.replace(progress_path)
        print(
            f"step {step}: eval return {np.mean(returns):.1f} ± {np.std(returns):.1f}; "
            f"{step / max(progress['wall_seconds'], 1e-9):.0f} steps/s overall",
            flush=True,
        )
    return progress
