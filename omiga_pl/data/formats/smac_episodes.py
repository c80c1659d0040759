"""Importer for the OMIGA / MADT SMAC layout: a directory of per-episode ``torch.save`` files.

Each file holds a list over agents; each agent's trajectory is a list over time of
``[state, obs, action, reward, done, available_actions]`` (``state`` agent-specific,
``action`` / ``reward`` length-1 arrays, ``available_actions`` a 0/1 vector). What the
native file gets (N agents, T steps, E episodes):

- ``observations`` [T + E, N, O]; the layout has no final observation, so each
  episode's final row repeats its last observation (the reference likewise repeats
  the last state as its own next state). The final transition is marked terminated,
  so that copy never enters a target.
- ``states`` [T + E, N * S_agent]: the per-agent state vectors concatenated over
  agents, which is exactly the mixer input the reference builds.
- ``avail_actions`` [T + E, N, A] from the stored masks (final row repeated).
- ``actions`` [T, N] int64; ``rewards`` [T] = agent 0's reward, as the reference.
- ``terminations``: the last step of each episode (the reference's rule "next state
  equals state" marks exactly that step, plus any step whose state happens to repeat,
  which we count but do not mark). With ``episode_limit`` set, an episode of exactly
  that length is marked truncated instead.

Files are read in natural sort order (``2`` before ``10``); the reference used
unsorted ``glob`` order. Loading is one unpickle per file plus array stacking per
field: no Python loop over steps.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import re
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from omiga_pl.data.formats.importing import (
    Notes,
    allow_taken_actions,
    as_float32,
    as_index,
    as_mask,
    check_action_width,
    describe_dtype,
    final_row_index,
)
from omiga_pl.data.formats.native import EpisodeDataset
from omiga_pl.data.formats.safe_pickle import RefusedGlobal, load_pickled
from omiga_pl.errors import DatasetError

FORMAT = "omiga-smac"
STEP_ITEMS = ("state", "obs", "action", "reward", "done", "available_actions")
QUALITIES = ("good", "medium", "poor", "expert", "replay", "random")
# SMAC v1 step limits of the maps the OMIGA / MADT data covers (and a few common ones).
SMAC_EPISODE_LIMITS = {
    "3m": 60,
    "8m": 120,
    "2s3z": 120,
    "3s5z": 150,
    "5m_vs_6m": 70,
    "6h_vs_8z": 150,
    "2c_vs_64zg": 400,
    "corridor": 400,
    "3s5z_vs_3s6z": 170,
    "MMM2": 180,
    "27m_vs_30m": 180,
}


def episode_files(src: str | os.PathLike) -> list[Path]:
    """The episode files of ``src`` in natural sort order; a clear error if there are none."""
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(src, None, "expected a directory of per-episode torch.save files")
    entries = sorted(src.iterdir(), key=_natural_key)
    files = [p for p in entries if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".md")]
    if not files:
        subdirs = [p.name for p in entries if p.is_dir()]
        hint = f"; it has sub-directories {subdirs}: pass one of them" if subdirs else ""
        raise DatasetError(src, None, f"empty directory: no episode files{hint}")
    return files


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def load_episode(path: Path, trust_pickle: bool = False) -> Any:
    """Unpickle one episode file; every failure becomes a :class:`DatasetError` naming it."""
    try:
        return load_pickled(path, trusted=trust_pickle)
    except RefusedGlobal as error:
        raise DatasetError(
            path,
            None,
            f"refused to unpickle '{error.qualified}': episode files should hold only arrays and "
            "lists; pass --trust-pickle (executes code from the file) only for a source you trust",
        ) from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, RuntimeError, ValueError, OSError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DatasetError(path, None, f"cannot be unpickled (truncated or corrupt file?): {first}") from None
    except (AttributeError, ImportError, IndexError, KeyError, TypeError) as error:
        raise DatasetError(path, None, f"cannot be unpickled (corrupt file?): {error}") from None


def episode_arrays(path: Path, episode: Any) -> dict[str, np.ndarray] | str:
    """Stack one episode into arrays [T, N, ...] per item, or return why it is ragged.

    Raises :class:`DatasetError` for a structure or dtype problem; returns a string
    (the reason) when the agents' trajectories have different lengths.
    """
    if not isinstance(episode, (list, tuple)) or len(episode) == 0:
        raise DatasetError(
            path, None, f"expected a non-empty list over agents, found {type(episode).__name__}"
        )
    for agent, trajectory in enumerate(episode):
        if not isinstance(trajectory, (list, tuple)) or len(trajectory) == 0:
            raise DatasetError(
                path,
                f"agent {agent}",
                f"expected a non-empty list over time steps, found {_describe(trajectory)}",
            )
    lengths = [len(trajectory) for trajectory in episode]
    if len(set(lengths)) > 1:
        return f"agents' trajectories have different lengths {lengths}"
    columns = []
    for agent, trajectory in enumerate(episode):
        widths = set(map(_len_or_none, trajectory))
        if widths != {len(STEP_ITEMS)}:
            step = next(t for t, item in enumerate(trajectory) if _len_or_none(item) != len(STEP_ITEMS))
            raise DatasetError(
                path,
                f"agent {agent} step {step}",
                f"expected {len(STEP_ITEMS)} items {list(STEP_ITEMS)}, found {_describe(trajectory[step])}",
            )
        columns.append(list(zip(*trajectory)))
    out = {}
    for k, item in enumerate(STEP_ITEMS):
        try:
            stacked = np.asarray([agent_columns[k] for agent_columns in columns])
        except (ValueError, TypeError, RuntimeError):
            raise DatasetError(path, item, _inconsistent_sizes(columns, k)) from None
        _check_values(path, item, stacked)
        out[item] = np.swapaxes(stacked, 0, 1)  # [N, T, ...] -> [T, N, ...]
    _check_discrete(path, out)
    return out


def read_episodes(
    files: list[Path], trust_pickle: bool, workers: int, progress: bool, desc: str
) -> Iterator[tuple[Path, dict[str, np.ndarray] | str]]:
    """``(file, episode_arrays(...))`` in file order, unpickled in ``workers`` processes."""
    from tqdm import tqdm

    if workers <= 1 or len(files) < 2 * workers:
        for path in tqdm(files, desc=desc, unit="file", disable=not progress):
            yield path, episode_arrays(path, load_episode(path, trust_pickle))
        return
    size = -(-len(files) // (workers * 4))
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    # Not fork: the parent may hold JAX/torch threads, and a forked child can deadlock on
    # their locks. A forkserver child starts clean (and cheaper than spawn).
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        results = pool.map(_read_chunk, chunks, [trust_pickle] * len(chunks))
        for chunk in tqdm(results, desc=desc, total=len(chunks), unit="chunk", disable=not progress):
            for path, arrays in chunk:
                if isinstance(arrays, tuple):  # a DatasetError raised in the worker
                    raise DatasetError(path, arrays[0], arrays[1])
                yield path, arrays


def _read_chunk(files: list[Path], trust_pickle: bool) -> list[tuple[Path, Any]]:
    """Worker: episode arrays of ``files``; stops at the first error, returned as (field, problem)."""
    out: list[tuple[Path, Any]] = []
    for path in files:
        try:
            out.append((path, episode_arrays(path, load_episode(path, trust_pickle))))
        except DatasetError as error:
            prefix = f"{error.path}: " if error.field is None else f"{error.path}: field '{error.field}': "
            out.append((Path(error.path), (error.field, str(error)[len(prefix) :])))
            break
    return out


def _check_discrete(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Per-episode checks of actions, rewards, done flags and masks, so errors name the file."""
    n_steps, n_agents = arrays["obs"].shape[:2]
    actions = as_index(path, "action", _squeeze_last(path, "action", arrays["action"], n_steps, n_agents))
    _squeeze_last(path, "reward", arrays["reward"], n_steps, n_agents)
    as_mask(path, "done", _squeeze_last(path, "done", arrays["done"], n_steps, n_agents))
    avail = as_mask(path, "available_actions", arrays["available_actions"].reshape(n_steps, n_agents, -1))
    check_action_width(path, actions, avail.shape[2], "action")


def _check_values(path: Path, item: str, stacked: np.ndarray) -> None:
    """Numbers only, and finite: [N, T, ...] arrays of one episode."""
    if stacked.dtype.kind not in "biuf":
        raise DatasetError(path, item, f"expected numbers, found {describe_dtype(stacked.dtype)}")
    if stacked.dtype.kind == "f":
        finite = np.isfinite(stacked)
        if not finite.all():
            agent, step = (int(i) for i in np.argwhere(~finite)[0][:2])
            bad = stacked[~finite].flat[0]
            raise DatasetError(
                path, item, f"expected finite values, found {bad} at agent {agent} step {step}"
            )


def _len_or_none(item: Any) -> int | None:
    return len(item) if isinstance(item, (list, tuple)) else None


def _describe(item: Any) -> str:
    if isinstance(item, (list, tuple)):
        return f"a {type(item).__name__} of {len(item)} items"
    return type(item).__name__


def _inconsistent_sizes(columns: list[list[tuple]], k: int) -> str:
    """Say which agent / step breaks the shape of item ``k`` (error path only)."""
    first = None
    for agent, agent_columns in enumerate(columns):
        for step, value in enumerate(agent_columns[k]):
            shape = np.shape(value) if not isinstance(value, str) else "text"
            if first is None:
                first = shape
            elif shape != first:
                return (
                    f"inconsistent sizes: agent 0 step 0 has shape {first}, "
                    f"agent {agent} step {step} has {shape}"
                )
    return "cannot be stacked into an array (mixed types?)"


def import_smac_episodes(
    src: str | os.PathLike,
    *,
    episode_limit: int | None = None,
    trust_pickle: bool = False,
    skip_ragged: bool = False,
    progress: bool = False,
    workers: int = 1,
    scenario: str | None = None,
    quality: str | None = None,
) -> tuple[EpisodeDataset, dict[str, Any]]:
    """Read a directory of OMIGA / MADT SMAC episode files; see the module docstring.

    Args:
        src: the ``<map>/<quality>/`` directory; never modified.
        episode_limit: mark episodes of exactly this length truncated (default: every
            episode terminated, as the reference treats them).
        trust_pickle: unpickle with the unrestricted unpickler (runs code from the file).
        skip_ragged: skip episodes whose agents' trajectories differ in length (the
            reference does) instead of failing.
        progress: show a progress bar over files.
        workers: unpickle in this many processes (unpickling dominates the load time;
            worth it with free cores and hundreds of files).
        scenario, quality: recorded in the card; inferred from the path when omitted.

    Returns:
        the dataset and its card (``derived`` says what was reconstructed and how).
    """
    src = Path(src)
    files = episode_files(src)
    fields: dict[str, list[np.ndarray]] = {item: [] for item in STEP_ITEMS}
    shapes: dict[str, tuple] = {}
    first_file: Path | None = None
    skipped: list[str] = []
    for path, arrays in read_episodes(files, trust_pickle, workers, progress, f"reading {src.name}"):
        if isinstance(arrays, str):
            if not skip_ragged:
                raise DatasetError(
                    path, "episode", f"ragged episode: {arrays} (pass --skip-ragged to skip such episodes)"
                )
            skipped.append(path.name)
            continue
        for item, array in arrays.items():
            tail = array.shape[1:]
            if first_file is None:
                shapes[item] = tail
            elif shapes[item] != tail:
                what = "agent count" if tail[:1] != shapes[item][:1] else "shape per agent"
                raise DatasetError(
                    path,
                    item,
                    f"{what} differs from the first episode ({first_file.name}): expected "
                    f"[T, {', '.join(map(str, shapes[item]))}], found [T, {', '.join(map(str, tail))}]",
                )
            fields[item].append(array)
        first_file = first_file or path
    if first_file is None:
        raise DatasetError(src, "episode", f"all {len(files)} episodes are ragged; nothing to import")
    lengths = np.array([a.shape[0] for a in fields["obs"]], dtype=np.int64)
    data, notes = _assemble(src, fields, lengths, episode_limit)
    if skipped:
        notes["episodes"] = f"skipped {len(skipped)} ragged episode(s) as the reference does: {skipped[:10]}"
    card = _card(src, files, scenario, quality, episode_limit, trust_pickle, notes)
    return data, card


def _assemble(
    src: Path, fields: dict[str, list[np.ndarray]], lengths: np.ndarray, episode_limit: int | None
) -> tuple[EpisodeDataset, Notes]:
    # Concatenate field by field, dropping each episode list at once: peak memory stays
    # near one copy of the dataset plus one field.
    cat = {}
    for item in STEP_ITEMS:
        cat[item] = np.concatenate(fields[item])
        fields[item].clear()
    n_steps = int(lengths.sum())
    n_agents = cat["obs"].shape[1]
    rows = final_row_index(lengths)
    obs = as_float32(src, "obs", cat["obs"].reshape(n_steps, n_agents, -1))
    agent_states = as_float32(src, "state", cat["state"].reshape(n_steps, n_agents, -1))
    actions = as_index(src, "action", _squeeze_last(src, "action", cat["action"], n_steps, n_agents))
    rewards_all = as_float32(src, "reward", _squeeze_last(src, "reward", cat["reward"], n_steps, n_agents))
    dones = as_mask(src, "done", _squeeze_last(src, "done", cat["done"], n_steps, n_agents))
    avail = as_mask(src, "available_actions", cat["available_actions"].reshape(n_steps, n_agents, -1))
    check_action_width(src, actions, avail.shape[2], "action")

    ends = np.cumsum(lengths) - 1
    is_end = np.zeros(n_steps, dtype=bool)
    is_end[ends] = True
    truncations = np.zeros(n_steps, dtype=bool)
    if episode_limit is not None:
        truncations[ends[lengths == episode_limit]] = True
    terminations = is_end & ~truncations

    avail_rows = np.ascontiguousarray(avail[rows])
    step_rows = np.arange(n_steps) + np.repeat(np.arange(lengths.shape[0]), lengths)
    repaired = allow_taken_actions(avail_rows, actions, step_rows)
    observations = obs[rows]
    del obs, cat["obs"]
    states = agent_states.reshape(n_steps, -1)[rows]
    data = EpisodeDataset(
        observations=observations,
        states=states,
        avail_actions=avail_rows,
        actions=actions,
        rewards=np.ascontiguousarray(rewards_all[:, 0]),
        terminations=terminations,
        truncations=truncations,
        episode_lengths=lengths,
    )
    data.validate(src)

    repeats = (agent_states[1:] == agent_states[:-1]).all(axis=(1, 2)) & ~is_end[:-1]
    reward_differs = int((rewards_all != rewards_all[:, :1]).any(axis=1).sum())
    done_any = dones.any(axis=1)
    notes: Notes = {
        "observations": "each episode's final row repeats its last observation (the layout stores no "
        "final observation); the last transition is terminal, so the copy never enters a target",
        "states": f"per-agent state vectors ({agent_states.shape[2]} each) concatenated over the "
        f"{n_agents} agents, as the reference's mixer input; final row repeats the last state",
        "avail_actions": "stored available_actions; final row repeats the last step's mask"
        + (
            f"; {repaired} taken action(s) the mask marked unavailable were set available" if repaired else ""
        ),
        "rewards": "agent 0's reward, as the reference"
        + (f"; agents' rewards differ at {reward_differs} step(s)" if reward_differs else ""),
        "terminations": "the last step of every episode (the reference: next state equals state)"
        + (
            f"; {int(repeats.sum())} mid-episode step(s) whose state repeats exactly would also be "
            "terminal under the reference's rule and are not marked here"
            if repeats.any()
            else ""
        ),
        "truncations": (
            f"episodes of exactly {episode_limit} steps (the given episode limit): {int(truncations.sum())}"
            if episode_limit is not None
            else "none: the layout does not say whether the step limit ended an episode; every end is "
            "terminal, as the reference treats it"
        ),
        "source_done_flags": f"stored done flags set on the last step of {int(done_any[ends].sum())} of "
        f"{lengths.shape[0]} episodes and on {int((done_any & ~is_end).sum())} earlier step(s); not used "
        "(the reference does not use them either)",
        "episode_won": "not recorded by this layout",
    }
    return data, notes


def _squeeze_last(src: Path, item: str, array: np.ndarray, n_steps: int, n_agents: int) -> np.ndarray:
    """[T, N] from [T, N] or [T, N, 1] (scalars or length-1 arrays per step)."""
    if array.ndim == 3 and array.shape[2] == 1:
        return array[..., 0]
    if array.ndim == 2:
        return array
    raise DatasetError(
        src, item, f"expected one value per agent and step, found shape per step {list(array.shape[2:])}"
    )


def _card(
    src: Path,
    files: list[Path],
    scenario: str | None,
    quality: str | None,
    episode_limit: int | None,
    trust_pickle: bool,
    notes: Notes,
) -> dict[str, Any]:
    inferred_quality = src.name.lower() if src.name.lower() in QUALITIES else None
    scenario = scenario or (src.parent.name if inferred_quality else src.name)
    card: dict[str, Any] = {
        "env_family": "smac",
        "scenario": scenario,
        "quality": quality or inferred_quality or "unknown",
        "source_format": FORMAT,
        "source_path": str(src),
        "source_files": len(files),
        "unpickler": "unrestricted (--trust-pickle)" if trust_pickle else "restricted allow-list",
        "derived": notes,
    }
    limit = episode_limit or SMAC_EPISODE_LIMITS.get(scenario)
    if limit is not None:
        card["episode_limit"] = int(limit)
    return card
