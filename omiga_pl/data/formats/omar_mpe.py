"""Importer for OMAR-style MPE datasets: NumPy arrays per agent.

A dataset directory (``<env_id>/<data_type>/seed_<k>_data/`` in OMAR) holds, for every
agent i = 0 .. N-1, ``obs_i.npy`` [T, O], ``acs_i.npy`` [T, A], ``rews_i.npy`` [T],
``next_obs_i.npy`` [T, O] and ``dones_i.npy`` [T]; MaMuJoCo sets add ``states_i.npy``
and ``next_states_i.npy``. Transitions are stored back to back without an episode
index, so episodes are recovered here:

- an episode ends at step t when ``dones[t]`` is set, when ``next_obs[t]`` differs
  from ``obs[t + 1]`` (the next row starts a new episode), at the last row, or every
  ``episode_length`` steps when that is given (MPE episodes are a fixed 25 steps and
  never set ``dones``);
- an end with ``dones`` set is a termination, any other end a truncation (time limit);
- unlike the other layouts the true final observation exists: it is ``next_obs`` of
  the episode's last step.

Rewards become one team reward (agent 0's when all agents agree, else their mean);
MPE has no global state, so ``states`` is left out and the mixer sees the concatenated
observations. One-hot action rows become discrete indices.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from omiga_pl.data.formats.importing import Notes, as_float32, final_row_positions
from omiga_pl.data.formats.native import EpisodeDataset
from omiga_pl.errors import DatasetError

FORMAT = "omar-mpe"
FIELDS = ("obs", "acs", "rews", "next_obs", "dones")
STATE_FIELDS = ("states", "next_states")
QUALITIES = ("random", "medium-replay", "medium", "expert")


def agent_count(src: Path) -> int:
    """N, checking that ``obs_0.npy`` .. ``obs_{N-1}.npy`` are all there."""
    indices = sorted(
        int(m.group(1)) for p in src.glob("obs_*.npy") if (m := re.fullmatch(r"obs_(\d+)\.npy", p.name))
    )
    if not indices:
        if not any(src.iterdir()):
            raise DatasetError(src, None, "empty directory")
        raise DatasetError(src, "obs_0.npy", "missing: not an OMAR dataset directory (obs_<agent>.npy ...)")
    if indices != list(range(len(indices))):
        gap = next(i for i in range(len(indices) + 1) if i not in indices)
        raise DatasetError(src, f"obs_{gap}.npy", f"missing (found agents {indices})")
    return len(indices)


def load_array(path: Path) -> np.ndarray:
    """One ``.npy`` file, memory-mapped read-only; damaged or pickled files fail clearly."""
    if not path.is_file():
        raise DatasetError(path, None, "file not found")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error) or "Python objects" in str(error):
            raise DatasetError(
                path, None, "holds Python objects (dtype object), expected a numeric array"
            ) from None
        raise DatasetError(path, None, f"not a readable .npy file (truncated or corrupt?): {error}") from None
    except (OSError, EOFError) as error:
        raise DatasetError(path, None, f"not a readable .npy file (truncated or corrupt?): {error}") from None


def _stack(src: Path, field: str, n_agents: int, expect_ndim: int) -> np.ndarray:
    """[T, N, ...] from the per-agent files of ``field``, checking shapes agree."""
    arrays = [load_array(src / f"{field}_{i}.npy") for i in range(n_agents)]
    for i, array in enumerate(arrays):
        if array.ndim == expect_ndim + 1 and array.shape[-1] == 1 and expect_ndim == 1:
            arrays[i] = array = array[:, 0]
        if array.ndim != expect_ndim:
            want = "[T]" if expect_ndim == 1 else "[T, D]"
            raise DatasetError(
                src / f"{field}_{i}.npy", field, f"expected shape {want}, found {list(array.shape)}"
            )
        if array.shape != arrays[0].shape:
            what = "steps" if array.shape[0] != arrays[0].shape[0] else "sizes"
            raise DatasetError(
                src / f"{field}_{i}.npy",
                field,
                f"agents disagree on {what}: agent 0 has shape {list(arrays[0].shape)}, "
                f"agent {i} {list(array.shape)}"
                + (
                    " (the native format needs one observation size for all agents)"
                    if what == "sizes"
                    else ""
                ),
            )
    return np.stack(arrays, axis=1)


def import_omar(
    src: str | os.PathLike,
    *,
    episode_length: int | None = None,
    progress: bool = False,
    env_family: str | None = None,
    scenario: str | None = None,
    quality: str | None = None,
) -> tuple[EpisodeDataset, dict[str, Any]]:
    """Read an OMAR per-agent NumPy dataset directory (read-only); see the module docstring.

    Args:
        src: the ``seed_<k>_data`` directory.
        episode_length: cut episodes every this many steps instead of inferring the
            boundaries from ``next_obs`` / ``obs`` continuity.
        progress: accepted for a uniform importer interface (loading is a few arrays).
        env_family, scenario, quality: for the card; inferred from the path when omitted.
    """
    del progress
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(src, None, "expected a directory of per-agent .npy files")
    n_agents = agent_count(src)
    arrays = {
        "obs": _stack(src, "obs", n_agents, 2),
        "acs": _stack(src, "acs", n_agents, 2),
        "rews": _stack(src, "rews", n_agents, 1),
        "next_obs": _stack(src, "next_obs", n_agents, 2),
        "dones": _stack(src, "dones", n_agents, 1),
    }
    has_states = all((src / f"{f}_0.npy").exists() for f in STATE_FIELDS)
    if has_states:
        arrays["states"] = _stack(src, "states", n_agents, 2)
        arrays["next_states"] = _stack(src, "next_states", n_agents, 2)
    n_steps = arrays["obs"].shape[0]
    for field, array in arrays.items():
        if array.shape[0] != n_steps:
            raise DatasetError(
                src / f"{field}_0.npy",
                field,
                f"expected {n_steps} steps like obs_0.npy, found {array.shape[0]}",
            )
        if field == "next_obs" and array.shape != arrays["obs"].shape:
            raise DatasetError(
                src / "next_obs_0.npy",
                field,
                f"expected [T, O] = {[n_steps, arrays['obs'].shape[2]]} like obs, "
                f"found {[n_steps, array.shape[2]]}",
            )
    if n_steps == 0:
        raise DatasetError(src / "obs_0.npy", "obs", "holds no steps")
    obs = as_float32(src / "obs_0.npy", "obs", arrays["obs"])
    next_obs = as_float32(src / "next_obs_0.npy", "next_obs", arrays["next_obs"])
    rews = as_float32(src / "rews_0.npy", "rews", arrays["rews"])
    dones_raw = as_float32(src / "dones_0.npy", "dones", arrays["dones"])
    dones = dones_raw > 0.5
    notes: Notes = {}

    if episode_length is not None:
        if n_steps % episode_length:
            raise DatasetError(
                src / "obs_0.npy",
                "obs",
                f"{n_steps} steps is not a multiple of episode_length {episode_length}",
            )
        is_end = (np.arange(n_steps) % episode_length) == episode_length - 1
        early = dones.any(axis=1) & ~is_end
        if early.any():
            raise DatasetError(
                src / "dones_0.npy",
                "dones",
                f"step {int(np.argmax(early))} is done inside a fixed {episode_length}-step episode",
            )
        notes["episodes"] = f"fixed episodes of {episode_length} steps (given)"
    else:
        breaks = np.zeros(n_steps, dtype=bool)
        breaks[:-1] = (next_obs[:-1] != obs[1:]).any(axis=(1, 2))
        is_end = breaks | dones.any(axis=1)
        is_end[-1] = True
        notes["episodes"] = (
            "boundaries inferred: an episode ends where dones is set or where next_obs differs from "
            "the following obs"
        )
    terminations = is_end & dones.any(axis=1)
    truncations = is_end & ~terminations
    ends = np.flatnonzero(is_end)
    lengths = np.diff(np.concatenate([[-1], ends])).astype(np.int64)
    if dones.any(axis=1).any() and (dones.any(axis=1) != dones.all(axis=1)).any():
        notes["terminations"] = "a step counts as terminal when any agent's done is set (agents disagree)"
    else:
        notes["terminations"] = "dones set on an episode's last step"
    notes["truncations"] = "every episode end without dones (MPE's time limit): bootstrap from next_obs"

    final = final_row_positions(lengths)
    n_rows = n_steps + lengths.shape[0]
    not_final = np.ones(n_rows, dtype=bool)
    not_final[final] = False
    observations = np.empty((n_rows, *obs.shape[1:]), dtype=np.float32)
    observations[not_final] = obs
    observations[final] = next_obs[ends]
    notes["observations"] = "obs, with next_obs of each episode's last step as its final row"

    actions, notes["actions"] = _actions(src, arrays["acs"])
    if (rews == rews[:, :1]).all():
        rewards = rews[:, 0]
        notes["rewards"] = "shared reward (all agents' rewards are equal)"
    else:
        rewards = rews.mean(axis=1)
        notes["rewards"] = "mean of the agents' rewards (they differ)"
    states = None
    if has_states:
        st = as_float32(src / "states_0.npy", "states", arrays["states"])
        nst = as_float32(src / "next_states_0.npy", "next_states", arrays["next_states"])
        same = bool((st == st[:, :1]).all() and (nst == nst[:, :1]).all())
        st, nst = (st[:, 0], nst[:, 0]) if same else (st.reshape(n_steps, -1), nst.reshape(n_steps, -1))
        states = np.empty((n_rows, st.shape[1]), dtype=np.float32)
        states[not_final] = st
        states[final] = nst[ends]
        notes["states"] = (
            "states_0 (identical for all agents)" if same else "per-agent states concatenated"
        ) + ("; final row from next_states")
    else:
        notes["states"] = "none (MPE has no global state): the mixer sees the concatenated observations"
    data = EpisodeDataset(
        observations=observations,
        states=states,
        actions=actions,
        rewards=np.ascontiguousarray(rewards, dtype=np.float32),
        terminations=terminations,
        truncations=truncations,
        episode_lengths=lengths,
    )
    data.validate(src)
    notes["episode_won"] = "not applicable"
    return data, _card(src, env_family, scenario, quality, episode_length, notes)


def _actions(src: Path, acs: np.ndarray) -> tuple[np.ndarray, str]:
    """Discrete indices from one-hot rows, else continuous float32 actions."""
    values = as_float32(src / "acs_0.npy", "acs", acs)
    one_hot = values.shape[-1] > 1 and np.isin(values, (0.0, 1.0)).all() and (values.sum(-1) == 1).all()
    if one_hot:
        return values.argmax(-1).astype(np.int64), "one-hot rows converted to action indices"
    return np.ascontiguousarray(values), "continuous actions as stored"


def _card(
    src: Path,
    env_family: str | None,
    scenario: str | None,
    quality: str | None,
    episode_length: int | None,
    notes: Notes,
) -> dict[str, Any]:
    resolved = src.resolve()
    seed_match = re.fullmatch(r"seed_(\d+)_data", resolved.name)
    quality_dir = resolved.parent if seed_match else resolved
    inferred_quality = quality_dir.name if quality_dir.name in QUALITIES else None
    card: dict[str, Any] = {
        "env_family": env_family or "mpe",
        "scenario": scenario or (quality_dir.parent.name if inferred_quality else "unknown"),
        "quality": quality or inferred_quality or "unknown",
        "source_format": FORMAT,
        "source_path": str(src),
        "derived": notes,
    }
    if seed_match:
        card["seed"] = int(seed_match.group(1))
    if episode_length is not None:
        card["episode_limit"] = int(episode_length)
    return card
