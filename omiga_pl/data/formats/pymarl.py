"""Importer for pymarl / OffPyMARL episode buffers saved as HDF5 (``EpisodeBatch`` fields).

One ``.h5`` file (or a directory of them, read in natural order and concatenated) holds
pymarl's transition fields batch-major, ``[episodes B, time T_max, ...]``:

=================  ======================  ========================================
key                shape                   meaning
=================  ======================  ========================================
``obs``            [B, T_max, N, O]        each agent's observation
``state``          [B, T_max, S]           global state (optional)
``actions``        [B, T_max, N(, 1)]      action index
``avail_actions``  [B, T_max, N, A]        0/1 availability (optional)
``reward``         [B, T_max(, 1)]         team reward of the step
``terminated``     [B, T_max(, 1)]         the env ended the episode at this step
``filled``         [B, T_max(, 1)]         1 where the row holds data, 0 = padding
=================  ======================  ========================================

pymarl's runner writes ``obs`` / ``state`` / ``avail_actions`` at t = 0 .. L (the last
is the final observation) and ``actions`` / ``reward`` / ``terminated`` at t = 0 .. L-1;
``filled`` is 1 on every written row, so an episode of L steps has ``filled.sum() = L + 1``
(``--filled-counts steps`` reads files whose ``filled`` marks only the L steps: the final
observation row is then the one after them, and must exist). ``filled`` must be a
prefix of ones. pymarl stores ``terminated = 0`` when the time limit ended an episode,
so an episode whose last step is not terminated is a truncation; ``terminated`` before
the last step is an error. Rows past ``filled`` are never read.
Other keys (``actions_onehot``, ``probs``...) are ignored and listed in the card.
"""

from __future__ import annotations

import os
import re
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
)
from omiga_pl.data.formats.native import EpisodeDataset, hdf5_open_problem
from omiga_pl.errors import DatasetError

FORMAT = "pymarl"
REQUIRED = ("obs", "actions", "reward", "terminated", "filled")
OPTIONAL = ("state", "avail_actions")
FILLED_COUNTS = ("rows", "steps")


def is_pymarl_keys(keys: set[str]) -> bool:
    """Whether an HDF5 file's top-level keys are a pymarl episode buffer's."""
    return set(REQUIRED) <= keys


def buffer_files(src: Path) -> list[Path]:
    """``src`` itself, or the ``.h5`` / ``.hdf5`` files of a directory in natural order."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise DatasetError(src, None, "not found")
    files = sorted(
        (p for p in src.iterdir() if p.is_file() and p.suffix in (".h5", ".hdf5")),
        key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)],
    )
    if not files:
        raise DatasetError(src, None, "expected pymarl episode-buffer .h5 files, found none")
    return files


def _read(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    import h5py

    try:
        handle = h5py.File(path, "r")  # read-only: the source is never modified
    except OSError as error:
        raise DatasetError(path, None, hdf5_open_problem(path, error)) from None
    with handle:
        keys = set(handle.keys())
        for key in REQUIRED:
            if key not in keys:
                raise DatasetError(path, key, f"missing: a pymarl episode buffer has {list(REQUIRED)}")
        out = {}
        for key in (*REQUIRED, *OPTIONAL):
            if key not in keys:
                continue
            if not isinstance(handle[key], h5py.Dataset):
                raise DatasetError(path, key, "expected an array, found an HDF5 group")
            out[key] = handle[key][()]
        return out, sorted(keys - set(REQUIRED) - set(OPTIONAL))


def _squeeze_last(path: Path, key: str, array: np.ndarray, ndim: int) -> np.ndarray:
    """Drop pymarl's trailing ``vshape=(1,)`` axis; check the rank."""
    if array.ndim == ndim + 1 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != ndim:
        raise DatasetError(
            path, key, f"expected {ndim} axes (batch-major [B, T, ...]), found shape {list(array.shape)}"
        )
    return array


def _lengths(path: Path, filled: np.ndarray, counts: str) -> np.ndarray:
    """[B] steps per episode from ``filled`` (a prefix of ones per episode)."""
    rows = filled.sum(axis=1).astype(np.int64)
    prefix = np.arange(filled.shape[1])[None, :] < rows[:, None]
    if (filled != prefix).any():
        b = int(np.argwhere((filled != prefix).any(axis=1))[0, 0])
        raise DatasetError(
            path,
            "filled",
            f"expected ones then zeros (padding at the end), episode {b} is {filled[b].astype(int).tolist()}",
        )
    steps = rows - 1 if counts == "rows" else rows
    if (steps < 1).any():
        b = int(np.argmin(steps))
        raise DatasetError(
            path, "filled", f"expected at least one step per episode, episode {b} has {int(steps[b])}"
        )
    if counts == "steps" and (steps >= filled.shape[1]).any():
        b = int(np.argmax(steps))
        raise DatasetError(
            path,
            "filled",
            f"with --filled-counts steps the final observation row must exist: "
            f"episode {b} fills all {filled.shape[1]} rows",
        )
    return steps


def _one_file(path: Path, counts: str) -> tuple[dict[str, np.ndarray], list[str], int]:
    raw, ignored = _read(path)
    obs = raw["obs"]
    if obs.ndim != 4:
        raise DatasetError(path, "obs", f"expected [B, T, N, O], found shape {list(obs.shape)}")
    n_eps, t_max, n_agents, _ = obs.shape
    fields = {
        "filled": _squeeze_last(path, "filled", raw["filled"], 2),
        "reward": _squeeze_last(path, "reward", raw["reward"], 2),
        "terminated": _squeeze_last(path, "terminated", raw["terminated"], 2),
        "actions": _squeeze_last(path, "actions", raw["actions"], 3),
    }
    if "state" in raw:
        if raw["state"].ndim != 3:
            raise DatasetError(path, "state", f"expected [B, T, S], found shape {list(raw['state'].shape)}")
        fields["state"] = raw["state"]
    if "avail_actions" in raw:
        if raw["avail_actions"].ndim != 4:
            raise DatasetError(
                path,
                "avail_actions",
                f"expected [B, T, N, A], found shape {list(raw['avail_actions'].shape)}",
            )
        fields["avail_actions"] = raw["avail_actions"]
    for key, array in fields.items():
        want = (n_eps, t_max) + ((n_agents,) if key in ("actions", "avail_actions") else ())
        if array.shape[: len(want)] != want:
            raise DatasetError(
                path, key, f"expected leading shape {list(want)} (as obs), found {list(array.shape)}"
            )
    filled = as_mask(path, "filled", fields["filled"])
    lengths = _lengths(path, filled, counts)
    # Only rows inside ``filled`` are checked and kept: padding may hold anything.
    step_mask = np.arange(t_max)[None, :] < lengths[:, None]  # [B, T]: transitions
    row_mask = np.arange(t_max)[None, :] <= lengths[:, None]  # [B, T]: observation rows
    terminated = np.zeros((n_eps, t_max), dtype=bool)
    terminated[step_mask] = as_mask(path, "terminated", fields["terminated"][step_mask])
    early = terminated & (np.arange(t_max)[None, :] < (lengths - 1)[:, None])
    if early.any():
        b, t = (int(i) for i in np.argwhere(early)[0])
        raise DatasetError(
            path,
            "terminated",
            f"episode {b} is terminated at step {t} but filled goes on to step {int(lengths[b]) - 1}",
        )
    last = terminated[np.arange(n_eps), lengths - 1]
    ends = _is_last(lengths)
    last_of_step = last[np.repeat(np.arange(n_eps), lengths)]
    out = {
        "observations": as_float32(path, "obs", obs[row_mask]),
        "actions": as_index(path, "actions", fields["actions"][step_mask]),
        "rewards": as_float32(path, "reward", fields["reward"][step_mask]),
        "terminations": last_of_step & ends,
        "truncations": ~last_of_step & ends,
        "episode_lengths": lengths,
    }
    if "state" in fields:
        out["states"] = as_float32(path, "state", fields["state"][row_mask])
    if "avail_actions" in fields:
        out["avail_actions"] = as_mask(path, "avail_actions", fields["avail_actions"][row_mask])
    return out, ignored, t_max


def _is_last(lengths: np.ndarray) -> np.ndarray:
    """[T] True at every episode's last step when steps are stored back to back."""
    flags = np.zeros(int(lengths.sum()), dtype=bool)
    flags[np.cumsum(lengths) - 1] = True
    return flags


def import_pymarl(
    src: str | os.PathLike,
    *,
    filled_counts: str = "rows",
    progress: bool = False,
    env_family: str | None = None,
    scenario: str | None = None,
    quality: str | None = None,
) -> tuple[EpisodeDataset, dict[str, Any]]:
    """Read a pymarl / OffPyMARL episode-buffer file or directory (read-only); module doc.

    Args:
        src: one ``.h5`` file or a directory of them.
        filled_counts: ``rows`` (pymarl: ``filled`` marks the L steps and the final
            observation row) or ``steps`` (``filled`` marks only the L steps).
        env_family, scenario, quality: for the card (default ``smac`` / unknown).
    """
    del progress
    src = Path(src)
    if filled_counts not in FILLED_COUNTS:
        raise DatasetError(
            src, None, f"filled_counts: expected one of {list(FILLED_COUNTS)}, found {filled_counts!r}"
        )
    parts, ignored, t_max = [], set(), None
    for path in buffer_files(src):
        part, extra, t_max = _one_file(path, filled_counts)
        if parts:
            for key in ("observations", "actions", "states", "avail_actions"):
                if (key in part) != (key in parts[0]) or (
                    key in part and part[key].shape[1:] != parts[0][key].shape[1:]
                ):
                    raise DatasetError(
                        path, key, f"differs in presence or shape from {buffer_files(src)[0].name}"
                    )
        parts.append(part)
        ignored.update(extra)
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    notes: Notes = {}
    if "avail_actions" in arrays:
        check_action_width(src, arrays["actions"], arrays["avail_actions"].shape[2], "actions")
        rows = np.arange(arrays["actions"].shape[0]) + np.repeat(
            np.arange(arrays["episode_lengths"].shape[0]), arrays["episode_lengths"]
        )
        fixed = allow_taken_actions(arrays["avail_actions"], arrays["actions"], rows)
        if fixed:
            notes["avail_actions"] = f"{fixed} taken actions were marked unavailable; marked available"
    data = EpisodeDataset(**arrays)
    data.validate(src)
    notes["episode_won"] = "not stored by pymarl buffers"
    notes["terminations"] = "an episode whose last step is not terminated is a truncation (time limit)"
    card: dict[str, Any] = {
        "env_family": env_family or "smac",
        "scenario": scenario or "unknown",
        "quality": quality or "unknown",
        "source_format": FORMAT,
        "source_path": str(src),
        "filled_counts": filled_counts,
        "episode_limit": int(t_max - 1),  # pymarl: max_seq_length = episode_limit + 1
        "derived": notes,
    }
    if ignored:
        card["ignored_keys"] = sorted(ignored)
    return data, card
