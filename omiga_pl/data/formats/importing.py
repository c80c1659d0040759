"""Pieces every importer shares: value checks that name the source, and row assembly.

An importer turns a published layout into an :class:`EpisodeDataset` plus a card. Most
layouts store T steps without each episode's final observation; the native format
wants T + E rows. :func:`final_row_index` maps every native row to the source step it
comes from (the final row repeats the episode's last step), so a whole field is
assembled with one gather.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from omiga_pl.errors import DatasetError

# What the importer derived or repaired, by native field: goes to card["derived"].
Notes = dict[str, str]


def describe_dtype(dtype: np.dtype) -> str:
    """A dtype in words for error messages (``text (dtype <U32)``)."""
    kinds = {"U": "text", "S": "bytes", "O": "Python objects", "b": "booleans", "c": "complex numbers"}
    return f"{kinds[dtype.kind]} (dtype {dtype})" if dtype.kind in kinds else f"dtype {dtype}"


def as_float32(source: Any, field: str, array: Any) -> np.ndarray:
    """``array`` as float32 after checking it is numeric and finite."""
    array = np.asarray(array)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise DatasetError(source, field, f"expected numbers, found {describe_dtype(array.dtype)}")
    out = array.astype(np.float32, copy=False)
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(out)
        if not finite.all():
            index = [int(i) for i in np.argwhere(~finite)[0]]
            raise DatasetError(source, field, f"expected finite values, found {out[tuple(index)]} at {index}")
    return out


def as_index(source: Any, field: str, array: Any) -> np.ndarray:
    """Integer-valued ``array`` (ints, or floats holding whole numbers) as int64."""
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64, copy=False)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise DatasetError(source, field, "expected action indices, found NaN/inf")
        rounded = np.rint(array)
        if (rounded != array).any():
            bad = array[rounded != array].flat[0]
            raise DatasetError(source, field, f"expected whole-number action indices, found {bad}")
        return rounded.astype(np.int64)
    raise DatasetError(source, field, f"expected integer action indices, found {describe_dtype(array.dtype)}")


def as_mask(source: Any, field: str, array: Any) -> np.ndarray:
    """A 0/1 (or bool) ``array`` as bool."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DatasetError(source, field, f"expected a 0/1 mask, found {describe_dtype(array.dtype)}")
    if not np.isin(array, (0, 1)).all():
        bad = array[~np.isin(array, (0, 1))].flat[0]
        raise DatasetError(source, field, f"expected only 0 and 1, found {bad}")
    return array.astype(bool)


def final_row_index(lengths: np.ndarray) -> np.ndarray:
    """[T + E] source step of every native row when steps are stored back to back.

    Episode e owns rows ``start_e .. start_e + L_e``; row ``start_e + j`` comes from
    step ``first_e + min(j, L_e - 1)``: the final row repeats the episode's last step.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n_eps = lengths.shape[0]
    episode_of_row = np.repeat(np.arange(n_eps), lengths + 1)
    row_starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    step_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    local = np.arange(episode_of_row.shape[0]) - row_starts[episode_of_row]
    return step_starts[episode_of_row] + np.minimum(local, lengths[episode_of_row] - 1)


def final_row_positions(lengths: np.ndarray) -> np.ndarray:
    """[E] native row index of every episode's final row."""
    return np.cumsum(np.asarray(lengths, dtype=np.int64) + 1) - 1


def allow_taken_actions(avail: np.ndarray, actions: np.ndarray, rows: np.ndarray) -> int:
    """Mark each taken action available in ``avail`` (in place); return how many were not.

    Some recorders store the mask of the *next* step or zero a dead agent's mask while
    still logging its no-op; the native format requires every taken action to be
    available, so such entries are set and counted for the card.
    """
    taken = np.take_along_axis(avail[rows], actions[..., None], axis=2)[..., 0]
    missing = np.argwhere(~taken)
    if missing.size:
        avail[rows[missing[:, 0]], missing[:, 1], actions[missing[:, 0], missing[:, 1]]] = True
    return int(missing.shape[0])


def check_action_width(source: Any, actions: np.ndarray, n_actions: int, field: str) -> None:
    """Discrete action indices must address the availability mask."""
    if actions.size and (actions.min() < 0 or actions.max() >= n_actions):
        bad = actions.max() if actions.max() >= n_actions else actions.min()
        raise DatasetError(
            source, field, f"expected action indices in [0, {n_actions}) ({n_actions} actions), found {bad}"
        )


def path_parts(path: str | os.PathLike) -> list[str]:
    """Directory names of ``path``, innermost last (used to infer scenario/quality)."""
    return list(os.path.normpath(os.path.abspath(path)).split(os.sep))
