"""Small synthetic datasets written in each published layout (for tests and benchmarks).

Every writer returns the arrays it wrote, concatenated over episodes, so a test can
compare an importer's output against them. Nothing here is used at run time.
Shapes: T steps in all, N agents, O obs size, S state size (per agent for SMAC), A
actions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _episode_arrays(
    rng: np.random.Generator, lengths: list[int], n_agents: int, obs_dim: int, state_dim: int, n_actions: int
) -> dict[str, np.ndarray]:
    n_steps = int(sum(lengths))
    avail = rng.random((n_steps, n_agents, n_actions)) < 0.6
    avail[..., 0] = True
    actions = np.argmax(rng.random(avail.shape) * avail, axis=-1)
    return {
        "obs": rng.standard_normal((n_steps, n_agents, obs_dim)).astype(np.float32),
        "state": rng.standard_normal((n_steps, n_agents, state_dim)).astype(np.float32),
        "actions": actions.astype(np.int64),
        "rewards": np.repeat(rng.random((n_steps, 1)).astype(np.float32), n_agents, axis=1),
        "avail": avail,
        "lengths": np.asarray(lengths, dtype=np.int64),
    }


def write_smac_episodes(
    directory: str | os.PathLike,
    lengths: list[int],
    n_agents: int = 3,
    obs_dim: int = 75,
    state_dim: int = 24,
    n_actions: int = 8,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """OMIGA / MADT SMAC layout: one ``torch.save`` file per episode, named ``<i>.pt``.

    Each file: list over agents of a list over steps of ``[state [S], obs [O],
    action [1], reward [1], done, available_actions [A] (0/1 float)]``.
    Returns obs [T, N, O], state [T, N, S], actions [T, N], rewards [T, N], avail
    [T, N, A] and lengths [E].
    """
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = _episode_arrays(np.random.default_rng(seed), lengths, n_agents, obs_dim, state_dim, n_actions)
    start = 0
    for e, length in enumerate(lengths):
        episode = []
        for agent in range(n_agents):
            trajectory = []
            for t in range(start, start + length):
                trajectory.append(
                    [
                        arrays["state"][t, agent],
                        arrays["obs"][t, agent],
                        np.array([arrays["actions"][t, agent]]),
                        np.array([arrays["rewards"][t, agent]], dtype=np.float32),
                        t == start + length - 1,
                        arrays["avail"][t, agent].astype(np.float32),
                    ]
                )
            episode.append(trajectory)
        torch.save(episode, directory / f"{e}.pt")
        start += length
    return arrays


def write_omar(
    directory: str | os.PathLike,
    n_episodes: int,
    episode_length: int = 25,
    n_agents: int = 3,
    obs_dim: int = 18,
    act_dim: int = 5,
    seed: int = 0,
    one_hot: bool = False,
    terminal_episodes: tuple[int, ...] = (),
) -> dict[str, np.ndarray]:
    """OMAR layout: ``obs_i.npy``, ``acs_i.npy``, ``rews_i.npy``, ``next_obs_i.npy``,
    ``dones_i.npy`` per agent, fixed-length episodes back to back.

    Episodes listed in ``terminal_episodes`` end with ``dones`` set. Returns obs / next_obs
    [T, N, O], acs [T, N, A], rews [T], dones [T] and lengths [E].
    """
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n_steps = n_episodes * episode_length
    rows = rng.standard_normal((n_episodes, episode_length + 1, n_agents, obs_dim)).astype(np.float32)
    obs = rows[:, :-1].reshape(n_steps, n_agents, obs_dim)
    next_obs = rows[:, 1:].reshape(n_steps, n_agents, obs_dim)
    if one_hot:
        acs = np.eye(act_dim, dtype=np.float32)[rng.integers(act_dim, size=(n_steps, n_agents))]
    else:
        acs = rng.uniform(-1, 1, (n_steps, n_agents, act_dim)).astype(np.float32)
    rews = rng.standard_normal(n_steps).astype(np.float32)
    dones = np.zeros(n_steps, dtype=np.float32)
    for e in terminal_episodes:
        dones[(e + 1) * episode_length - 1] = 1.0
    for i in range(n_agents):
        np.save(directory / f"obs_{i}.npy", obs[:, i])
        np.save(directory / f"acs_{i}.npy", acs[:, i])
        np.save(directory / f"rews_{i}.npy", rews)
        np.save(directory / f"next_obs_{i}.npy", next_obs[:, i])
        np.save(directory / f"dones_{i}.npy", dones)
    return {
        "obs": obs,
        "next_obs": next_obs,
        "acs": acs,
        "rews": rews,
        "dones": dones,
        "lengths": np.full(n_episodes, episode_length, dtype=np.int64),
    }


def write_og_marl_vault(
    root: str | os.PathLike,
    lengths: list[int],
    vault_name: str = "3m.vlt",
    uid: str = "Good",
    n_agents: int = 3,
    obs_dim: int = 75,
    state_dim: int = 72,
    n_actions: int = 8,
    seed: int = 0,
    truncated: tuple[int, ...] = (),
    trailing_steps: int = 0,
    leaves: tuple[str, ...] | None = None,
    mutate: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """An OG-MARL vault written by flashbax itself (needs JAX and flashbax).

    Episodes back to back (no final observation), terminals set on each episode's last
    step for every agent, or truncations for episodes in ``truncated``;
    ``trailing_steps`` unfinished steps follow. ``leaves`` limits the top-level keys
    written (to make a vault that lacks an array); ``mutate`` may change the NumPy
    experience tree in place before it is written (to make bad data). Returns the written arrays
    ([T, ...] without the batch axis), lengths and the vault directory.
    """
    import flashbax as fbx
    import jax.numpy as jnp
    from flashbax.vault import Vault

    arrays = _episode_arrays(
        np.random.default_rng(seed), [*lengths, trailing_steps], n_agents, obs_dim, 1, n_actions
    )
    n_steps = int(sum(lengths)) + trailing_steps
    ends = np.cumsum(lengths) - 1
    terminals = np.zeros((n_steps, n_agents), dtype=np.float32)
    truncations = np.zeros((n_steps, n_agents), dtype=np.float32)
    for e, end in enumerate(ends):
        (truncations if e in truncated else terminals)[end] = 1.0
    state = np.random.default_rng(seed + 1).standard_normal((n_steps, state_dim)).astype(np.float32)
    experience = {
        "observations": arrays["obs"],
        "actions": arrays["actions"].astype(np.int32),
        "rewards": arrays["rewards"],
        "terminals": terminals,
        "truncations": truncations,
        "infos": {"state": state, "legals": arrays["avail"].astype(np.float32)},
    }
    if leaves is not None:
        experience = {k: v for k, v in experience.items() if k in leaves}
    if mutate is not None:
        mutate(experience)
    buffer = fbx.make_flat_buffer(
        max_length=n_steps + 1, min_length=1, sample_batch_size=1, add_sequences=True, add_batch_size=None
    )
    example = {
        k: (jnp.asarray(v[0]) if not isinstance(v, dict) else {i: jnp.asarray(w[0]) for i, w in v.items()})
        for k, v in experience.items()
    }
    state_fbx = buffer.init(example)
    sequence = {
        k: (jnp.asarray(v) if not isinstance(v, dict) else {i: jnp.asarray(w) for i, w in v.items()})
        for k, v in experience.items()
    }
    state_fbx = buffer.add(state_fbx, sequence)
    root = Path(root).resolve()  # flashbax joins rel_dir onto the cwd: absolute wins
    vault = Vault(
        vault_name=vault_name, experience_structure=state_fbx.experience, rel_dir=str(root), vault_uid=uid
    )
    vault.write(state_fbx)
    return {
        **{k: v for k, v in experience.items() if k != "infos"},
        "state": state,
        "legals": arrays["avail"],
        "lengths": np.asarray(lengths, dtype=np.int64),
        "vault": root / vault_name / uid,
    }


def write_pymarl(
    path: str | os.PathLike,
    lengths: list[int],
    truncated: list[bool],
    t_max: int,
    n_agents: int = 3,
    obs_dim: int = 4,
    state_dim: int = 5,
    n_actions: int = 6,
    seed: int = 0,
    filled_counts: str = "rows",
) -> dict[str, np.ndarray]:
    """A pymarl ``EpisodeBatch``-style HDF5 buffer [B, t_max, ...] (padding after ``filled``).

    Episode b has ``lengths[b]`` steps; it is terminated at its last step unless
    ``truncated[b]``. ``filled`` covers the steps and the final row (``rows``, pymarl)
    or only the steps. Padding rows hold garbage (NaN observations) that an importer
    must never read. Returns the arrays written.
    """
    import h5py

    rng = np.random.default_rng(seed)
    b = len(lengths)
    obs = rng.standard_normal((b, t_max, n_agents, obs_dim)).astype(np.float32)
    state = rng.standard_normal((b, t_max, state_dim)).astype(np.float32)
    avail = (rng.random((b, t_max, n_agents, n_actions)) < 0.6).astype(np.int32)
    avail[..., 0] = 1
    actions = np.argmax(rng.random(avail.shape) * avail, axis=-1)[..., None].astype(np.int64)
    reward = rng.random((b, t_max, 1)).astype(np.float32)
    terminated = np.zeros((b, t_max, 1), np.uint8)
    filled = np.zeros((b, t_max, 1), np.uint8)
    for e, (length, cut) in enumerate(zip(lengths, truncated)):
        filled[e, : length + (1 if filled_counts == "rows" else 0)] = 1
        terminated[e, length - 1] = 0 if cut else 1
        obs[e, length + 1 :] = np.nan  # padding: never to be read
    arrays = {
        "obs": obs,
        "state": state,
        "avail_actions": avail,
        "actions": actions,
        "actions_onehot": np.eye(n_actions, dtype=np.float32)[actions[..., 0]],
        "reward": reward,
        "terminated": terminated,
        "filled": filled,
    }
    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            handle.create_dataset(key, data=value)
    return arrays
