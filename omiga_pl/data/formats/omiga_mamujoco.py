"""Importer for the OMIGA reference's MaMuJoCo HDF5 files (``Hopper-v2-3x1-expert.hdf5``...).

Reference layout (formats.md): keys ``o`` [R, N, O] per-agent observations, ``s``
[R, N, O'] per-agent states, ``a`` [R, N, A] actions in [-1, 1], ``r`` [R, 1] (or [R],
or [R, N, 1] per agent) rewards, ``d`` [R, 1] (or [R]) done flags; R rows back to back.

How episodes are recovered (the files carry no episode index):

* The published files hold one extra row per episode, flagged done (Ant: 1,001,000 rows
  for 1,000 episodes of 1,000 steps). We read each maximal run of ``d = 0`` rows followed
  by one ``d = 1`` row as one episode: the ``d = 0`` rows are its L steps (observation,
  action, reward), the ``d = 1`` row is its final observation (its action and reward
  are never used, as in the reference, which never samples a done row). This is the
  native row convention (L + 1 observation rows per episode), so observations are
  copied row for row.
* Time limit vs termination: an episode of exactly ``episode_limit`` (1000) steps was
  cut by the time limit (truncation: bootstrap from the final observation); a shorter
  one ended by termination (no bootstrap). The reference masks both (mask 0 at every
  episode's last step); we do not, which is the point of recovering boundaries. A
  genuine termination at exactly step 1000 is indistinguishable and counted as a
  truncation.
* Rows after the last done row (a file cut mid-episode) form a final truncated episode
  whose last row is its final observation; a done row right after another done row
  (an empty episode) is skipped. Both are counted in the card's ``import_notes``.

Dims are checked against MaMuJoCo in the reference observation mode. Hopper (14) and
HalfCheetah (23) have the same observation layout in v2 and v5; Ant does not (v2 obs
111 = 27 + 84 contact forces over 14 bodies, v5 105 = 27 + 78 over 13 bodies, so 113
vs 107 with the ids): such a file is marked ``observation_version: v2`` with an
``evaluation_refused`` reason; it trains, and evaluation is refused with that reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from omiga_pl.data.formats.native import EpisodeDataset
from omiga_pl.errors import DatasetError

KEYS = ("s", "o", "a", "r", "d")
DEFAULT_EPISODE_LIMIT = 1000
_NAME = re.compile(r"^(?P<task>[A-Za-z]+)-v\d+-(?P<conf>[^-]+)-(?P<quality>.+)$")


def parse_reference_name(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """``Hopper-v2-3x1-medium-replay.hdf5`` -> (``Hopper-3x1``, ``medium-replay``)."""
    match = _NAME.match(Path(path).stem)
    if not match:
        return None, None
    return f"{match['task']}-{match['conf']}", match["quality"]


def recover_episodes(done: np.ndarray, episode_limit: int = DEFAULT_EPISODE_LIMIT) -> dict[str, Any]:
    """Episode boundaries from the reference's done column (module docstring).

    Args:
        done: [R] bool, one flag per row.

    Returns: ``step_rows`` [T] (row of each step), ``obs_rows`` [T + E] (observation
    rows in native order), ``lengths`` [E], ``truncated`` [E] bool, and counts
    ``empty_episodes`` and ``trailing_rows``.
    """
    done = np.asarray(done, dtype=bool)
    done_rows = np.flatnonzero(done)
    starts = np.concatenate([[0], done_rows[:-1] + 1]) if done_rows.size else np.zeros(0, np.int64)
    lengths = done_rows - starts  # d = 0 rows before each done row
    keep = lengths > 0
    empty = int((~keep).sum())
    starts, ends, lengths = starts[keep], done_rows[keep], lengths[keep]
    truncated = lengths >= episode_limit
    tail_start = int(done_rows[-1]) + 1 if done_rows.size else 0
    trailing = len(done) - tail_start
    if trailing >= 2:  # a cut-off last episode: its last row is its final observation
        starts = np.append(starts, tail_start)
        ends = np.append(ends, len(done) - 1)
        lengths = np.append(lengths, trailing - 1)
        truncated = np.append(truncated, True)
    step_rows = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)]) if len(starts) else []
    obs_rows = np.concatenate([np.arange(s, e + 1) for s, e in zip(starts, ends)]) if len(starts) else []
    return {
        "step_rows": np.asarray(step_rows, dtype=np.int64),
        "obs_rows": np.asarray(obs_rows, dtype=np.int64),
        "lengths": np.asarray(lengths, dtype=np.int64),
        "truncated": np.asarray(truncated, dtype=bool),
        "empty_episodes": empty,
        "trailing_rows": int(trailing if trailing < 2 else 0),
    }


def _read(src: Path) -> dict[str, np.ndarray]:
    import h5py

    if not src.exists():
        raise DatasetError(src, None, "file not found")
    try:
        handle = h5py.File(src, "r")
    except OSError as error:
        raise DatasetError(src, None, f"not a readable HDF5 file (truncated or corrupt?): {error}") from None
    with handle:
        arrays = {}
        for key in KEYS:
            if key not in handle:
                raise DatasetError(
                    src, key, f"missing: expected the reference keys {list(KEYS)}, found {sorted(handle)}"
                )
            arrays[key] = handle[key][()]
    return arrays


def _shapes(src: Path, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    o, s, a, r, d = (arrays[k] for k in ("o", "s", "a", "r", "d"))
    if o.ndim != 3:
        raise DatasetError(src, "o", f"expected shape [rows, agents, obs], found {list(o.shape)}")
    rows, n_agents = o.shape[:2]
    if s.ndim != 3 or s.shape[:2] != (rows, n_agents):
        raise DatasetError(src, "s", f"expected shape [{rows}, {n_agents}, *], found {list(s.shape)}")
    if a.ndim != 3 or a.shape[:2] != (rows, n_agents):
        raise DatasetError(src, "a", f"expected shape [{rows}, {n_agents}, *], found {list(a.shape)}")
    if r.shape[0] != rows:
        raise DatasetError(src, "r", f"expected {rows} rows, found {list(r.shape)}")
    r = r.reshape(rows, -1)
    if r.shape[1] > 1:  # per-agent copies: must agree (the reference uses one team reward)
        if not np.allclose(r, r[:, :1]):
            raise DatasetError(
                src, "r", "expected one team reward per row, found per-agent rewards that differ"
            )
        r = r[:, :1]
    d = d.reshape(rows, -1)
    if d.shape != (rows, 1):
        raise DatasetError(
            src, "d", f"expected shape [{rows}, 1] or [{rows}], found {list(arrays['d'].shape)}"
        )
    return o, s, a, r[:, 0], d[:, 0] > 0.5


def import_omiga_mamujoco(
    src: str | os.PathLike,
    scenario: str | None = None,
    quality: str | None = None,
    episode_limit: int = DEFAULT_EPISODE_LIMIT,
    check_env: bool = True,
    reference_returns: dict[str, float] | None = None,
) -> tuple[EpisodeDataset, dict[str, Any]]:
    """Convert one reference file to a native :class:`EpisodeDataset` and its card.

    ``scenario`` / ``quality`` default to what the file name says (``Hopper-v2-3x1-expert``
    -> ``Hopper-3x1`` / ``expert``). With ``check_env`` the observation and action sizes
    are checked against gymnasium-robotics MaMuJoCo in the reference observation mode.
    """
    src = Path(src)
    arrays = _read(src)
    o, s, a, r, d = _shapes(src, arrays)
    name_scenario, name_quality = parse_reference_name(src)
    scenario = scenario or name_scenario
    quality = quality or name_quality
    if scenario is None:
        raise DatasetError(
            src,
            None,
            "cannot tell the task from the file name (expected e.g. Hopper-v2-3x1-expert.hdf5); "
            "pass scenario='Hopper-3x1'",
        )
    found = recover_episodes(d, episode_limit)
    if found["lengths"].size == 0:
        raise DatasetError(src, "d", "no episode found (no row flagged done and fewer than 2 rows)")
    step_rows, obs_rows = found["step_rows"], found["obs_rows"]
    observations = np.ascontiguousarray(o[obs_rows], dtype=np.float32)
    rows_s = s[obs_rows].astype(np.float32)
    # The reference's mixer input is the concatenation of the per-agent states. When they
    # equal the observations (the reference's MaMuJoCo construction) storing no states
    # gives exactly that input (the storage concatenates observations) at no cost.
    states = (
        None
        if rows_s.shape == observations.shape and np.array_equal(rows_s, observations)
        else (rows_s.reshape(len(obs_rows), -1))
    )
    actions = a[step_rows].astype(np.float32)
    overshoot = float(np.abs(actions).max(initial=0.0))
    if overshoot > 1.0 + 1e-6:
        raise DatasetError(src, "a", f"expected actions in [-1, 1], found values up to {overshoot:.4g}")
    lengths = found["lengths"]
    ends = np.cumsum(lengths) - 1
    truncations = np.zeros(len(step_rows), dtype=bool)
    terminations = np.zeros(len(step_rows), dtype=bool)
    truncations[ends[found["truncated"]]] = True
    terminations[ends[~found["truncated"]]] = True
    data = EpisodeDataset(
        observations=observations,
        states=states,
        actions=actions,
        rewards=r[step_rows].astype(np.float32),
        terminations=terminations,
        truncations=truncations,
        episode_lengths=lengths,
    )
    data.validate(src)
    n_rows = int(o.shape[0])
    notes = (
        f"{n_rows} rows -> {data.n_episodes} episodes, {data.n_transitions} steps: each run of d=0 rows "
        f"plus the following d=1 row is one episode (the d=1 row is its final observation; its action "
        f"and reward are dropped); episodes of {episode_limit} steps marked truncated "
        f"({int(found['truncated'].sum())}), shorter ones terminated ({int((~found['truncated']).sum())}); "
        f"{found['empty_episodes']} empty episodes skipped; {found['trailing_rows']} trailing row(s) dropped"
    )
    # Returns as a row-wise sum would give them (each episode's extra done row included),
    # for comparison with published statistics whose convention is not documented.
    done_rows = np.flatnonzero(d)
    obs_starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    last_rows = obs_rows[obs_starts + lengths]  # the final-observation row of each episode
    with_done = data.episode_returns() + np.where(d[last_rows], r[last_rows], 0.0)
    card: dict[str, Any] = {
        "env_family": "mamujoco",
        "scenario": scenario,
        "quality": quality,
        "obs_mode": "reference",
        "episode_limit": int(episode_limit),
        "source": str(src),
        "source_format": "omiga_mamujoco_hdf5",
        "source_rows": n_rows,
        "source_done_rows": int(done_rows.size),
        "source_return_mean_with_done_rows": float(with_done.mean()),
        "source_return_std_with_done_rows": float(with_done.std()),
        "import_notes": notes,
        "behaviour_policy": "OMIGA reference dataset (MuJoCo v2, mujoco-py)",
        "observation_version": "v2",
    }
    if reference_returns is not None:
        card["reference_returns"] = dict(reference_returns)
    if check_env:
        card.update(_check_against_env(src, scenario, data, episode_limit))
    return data, card


def _check_against_env(src: Path, scenario: str, data: EpisodeDataset, episode_limit: int) -> dict[str, Any]:
    """Compare with MaMuJoCo v5 in reference mode; returns card entries about evaluation."""
    from omiga_pl.envs.mamujoco import REFERENCE_V2_OBS_DIM, mamujoco_spec

    want = mamujoco_spec(scenario, obs_mode="reference", max_steps=episode_limit).dims
    found = data.dims
    for field, what, expected, actual in (
        ("o", "agent count", want.n_agents, found.n_agents),
        ("a", "action size", want.action_dim, found.action_dim),
    ):
        if expected != actual:
            raise DatasetError(
                src, field, f"{what} does not match mamujoco/{scenario}: expected {expected}, found {actual}"
            )
    if found.obs_dim == want.obs_dim:
        return {
            "evaluation_note": (
                f"v2 and v5 {scenario} observations have the same layout ({want.obs_dim} in reference mode); "
                "online evaluation runs in v5 (mujoco, not mujoco-py): dynamics and returns are close, "
                "not identical"
            )
        }
    v2 = REFERENCE_V2_OBS_DIM.get(scenario)
    if found.obs_dim != v2:
        raise DatasetError(
            src,
            "o",
            f"observation size does not match mamujoco/{scenario} in reference mode: expected "
            f"{want.obs_dim} (v5){'' if v2 is None else f' or {v2} (v2)'}, found {found.obs_dim}",
        )
    return {
        "evaluation_refused": (
            f"the file holds MuJoCo v2 observations ({found.obs_dim} per agent in reference mode) but "
            f"gymnasium-robotics builds v5 {scenario} with {want.obs_dim}: v2 observations "
            f"(mujoco-py, e.g. Ant's contact forces over 14 bodies vs 13 in v5) cannot be produced online"
        )
    }
