"""The native dataset format: one HDF5 file of episodes stored back to back.

Layout (T transitions, E episodes, N agents; see shared formats.md):

==================  ===================  =========  =========================================
dataset             shape                dtype      meaning
==================  ===================  =========  =========================================
observations        [T + E, N, O]        float32    every episode's observations incl. final
states              [T + E, S]           float32    global state (optional)
actions             [T, N] / [T, N, A]   int64/f32  discrete index / continuous in [-1, 1]
avail_actions       [T + E, N, A]        bool       discrete only (optional: all available)
rewards             [T]                  float32    team reward
terminations        [T]                  bool       env ended the episode: no bootstrap
truncations         [T]                  bool       time limit cut the episode: bootstrap
episode_lengths     [E]                  int64      steps per episode
episode_won         [E]                  bool       optional, SMAC-like tasks
==================  ===================  =========  =========================================

The dataset card (environment, dims, behaviour policy, statistics, command...) is stored
as the file attribute ``card_json`` and mirrored as flat attributes; a sidecar
``<file>.md`` repeats it with the file's sha256.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from omiga_pl.dims import ProblemDims
from omiga_pl.errors import DatasetError
from omiga_pl.io import atomic_output, sha256_file

FORMAT_NAME = "omiga_pl.native"
FORMAT_VERSION = 1
REQUIRED_FIELDS = (
    "observations",
    "actions",
    "rewards",
    "terminations",
    "truncations",
    "episode_lengths",
)
OPTIONAL_FIELDS = ("states", "avail_actions", "episode_won")


@dataclass
class EpisodeDataset:
    """A whole offline dataset in memory, in the native row convention (module doc)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    episode_lengths: np.ndarray
    states: np.ndarray | None = None
    avail_actions: np.ndarray | None = None
    episode_won: np.ndarray | None = None

    @property
    def n_episodes(self) -> int:
        return int(self.episode_lengths.shape[0])

    @property
    def n_transitions(self) -> int:
        return int(self.actions.shape[0])

    @property
    def dims(self) -> ProblemDims:
        """The sizes the arrays hold (computed on every access: fields may be reassigned).

        ``state_dim`` is the concatenated observations' size when there are no states;
        a discrete ``action_dim`` is the ``avail_actions`` width, else the largest action
        index + 1.
        """
        _, n_agents, obs_dim = self.observations.shape
        continuous = self.actions.ndim == 3
        if continuous:
            action_dim = int(self.actions.shape[2])
        elif self.avail_actions is not None:
            action_dim = int(self.avail_actions.shape[2])
        else:
            action_dim = int(self.actions.max()) + 1
        return ProblemDims(
            n_agents=int(n_agents),
            obs_dim=int(obs_dim),
            state_dim=int(n_agents * obs_dim if self.states is None else self.states.shape[1]),
            action_type="continuous" if continuous else "discrete",
            action_dim=action_dim,
        )

    def episode_starts(self) -> np.ndarray:
        """[E] index of each episode's first transition."""
        return np.concatenate([[0], np.cumsum(self.episode_lengths)[:-1]]).astype(np.int64)

    def transition_rows(self) -> np.ndarray:
        """[T] observation row of each transition (next observation is the row + 1)."""
        episode_of = np.repeat(np.arange(self.n_episodes), self.episode_lengths)
        return np.arange(self.n_transitions, dtype=np.int64) + episode_of

    def episode_returns(self) -> np.ndarray:
        """[E] undiscounted return of every episode, float64 for exact statistics."""
        return np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts())

    def validate(self, source: str | os.PathLike = "<memory>") -> None:
        """Check every invariant of the format; raise :class:`DatasetError` on the first."""
        lengths = self.episode_lengths
        if lengths.ndim != 1 or lengths.shape[0] == 0:
            raise DatasetError(source, "episode_lengths", "the dataset contains no episodes")
        if not np.issubdtype(lengths.dtype, np.integer) or (lengths < 1).any():
            raise DatasetError(
                source,
                "episode_lengths",
                f"expected positive integers, found {lengths.dtype} with minimum {lengths.min()}",
            )
        n_steps, n_eps = int(lengths.sum()), lengths.shape[0]
        n_rows = n_steps + n_eps
        _expect_shape(source, "observations", self.observations, (n_rows, None, None))
        n_agents = self.observations.shape[1]
        _expect_float(source, "observations", self.observations)
        if self.actions.ndim == 2:
            _expect_shape(source, "actions", self.actions, (n_steps, n_agents))
            if not np.issubdtype(self.actions.dtype, np.integer):
                raise DatasetError(
                    source, "actions", f"expected integer action indices [T, N], found {self.actions.dtype}"
                )
            if (self.actions < 0).any():
                raise DatasetError(source, "actions", f"expected indices >= 0, found {self.actions.min()}")
        else:
            _expect_shape(source, "actions", self.actions, (n_steps, n_agents, None))
            _expect_float(source, "actions", self.actions)
            if np.abs(self.actions).max(initial=0.0) > 1.0 + 1e-6:
                raise DatasetError(
                    source,
                    "actions",
                    "expected continuous actions in [-1, 1], found values up to "
                    f"{np.abs(self.actions).max():.4g} in magnitude",
                )
            if self.avail_actions is not None:
                raise DatasetError(source, "avail_actions", "present, but actions are continuous")
        _expect_shape(source, "rewards", self.rewards, (n_steps,))
        _expect_float(source, "rewards", self.rewards)
        for name in ("terminations", "truncations"):
            flags = getattr(self, name)
            _expect_shape(source, name, flags, (n_steps,))
            if flags.dtype != np.bool_:
                raise DatasetError(source, name, f"expected bool, found {flags.dtype}")
        if self.states is not None:
            _expect_shape(source, "states", self.states, (n_rows, None))
            _expect_float(source, "states", self.states)
        if self.avail_actions is not None:
            _expect_shape(source, "avail_actions", self.avail_actions, (n_rows, n_agents, None))
            if self.avail_actions.dtype != np.bool_:
                raise DatasetError(
                    source, "avail_actions", f"expected bool, found {self.avail_actions.dtype}"
                )
            n_actions = self.avail_actions.shape[2]
            if self.actions.max() >= n_actions:
                raise DatasetError(
                    source,
                    "actions",
                    f"expected indices < {n_actions} (avail_actions width), found {self.actions.max()}",
                )
            taken = np.take_along_axis(
                self.avail_actions[self.transition_rows()], self.actions[..., None], axis=2
            )
            if not taken.all():
                t, agent = np.argwhere(~taken[..., 0])[0]
                raise DatasetError(
                    source,
                    "actions",
                    f"transition {t}, agent {agent} took action "
                    f"{self.actions[t, agent]} which avail_actions marks unavailable",
                )
        if self.episode_won is not None:
            _expect_shape(source, "episode_won", self.episode_won, (n_eps,))
        ends = np.cumsum(lengths) - 1
        is_end = np.zeros(n_steps, dtype=bool)
        is_end[ends] = True
        flagged = self.terminations | self.truncations
        if (flagged & ~is_end).any():
            t = int(np.argmax(flagged & ~is_end))
            raise DatasetError(
                source,
                "terminations",
                f"transition {t} is flagged done but is not the last "
                "step of its episode (episode_lengths disagree with the done flags)",
            )
        if (~flagged[ends]).any():
            e = int(np.argmax(~flagged[ends]))
            raise DatasetError(
                source, "truncations", f"episode {e} ends without a termination or truncation flag"
            )
        if (self.terminations & self.truncations).any():
            t = int(np.argmax(self.terminations & self.truncations))
            raise DatasetError(source, "truncations", f"transition {t} is both terminated and truncated")


def _expect_shape(source: Any, name: str, array: np.ndarray, shape: tuple) -> None:
    ok = array.ndim == len(shape) and all(e is None or e == a for e, a in zip(shape, array.shape))
    if not ok:
        want = "[" + ", ".join("*" if e is None else str(e) for e in shape) + "]"
        raise DatasetError(source, name, f"expected shape {want}, found {list(array.shape)}")


def _expect_float(source: Any, name: str, array: np.ndarray) -> None:
    if not np.issubdtype(array.dtype, np.floating):
        raise DatasetError(source, name, f"expected floating point values, found {array.dtype}")
    finite = np.isfinite(array)
    if not finite.all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise DatasetError(
            source, name, f"expected finite values, found {array[index]} at index {list(index)}"
        )


def dataset_statistics(data: EpisodeDataset) -> dict[str, Any]:
    """Sizes and return / win statistics for the dataset card."""
    returns = data.episode_returns()
    stats: dict[str, Any] = {
        "n_episodes": data.n_episodes,
        "n_transitions": data.n_transitions,
        "episode_length_mean": float(data.episode_lengths.mean()),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "n_terminations": int(data.terminations.sum()),
        "n_truncations": int(data.truncations.sum()),
    }
    if data.episode_won is not None:
        stats["win_rate"] = float(data.episode_won.mean())
    return stats


def write_native(
    path: str | os.PathLike,
    data: EpisodeDataset,
    card: dict[str, Any],
    overwrite: bool = False,
    compression: str | None = "gzip",
) -> dict[str, Any]:
    """Validate ``data`` and write it with its card; returns the full card incl. sha256.

    The file is written under a temporary name and renamed, then the sidecar
    ``<path>.md`` is written the same way.
    """
    import h5py

    path = Path(path)
    data.validate(path)
    # What the file itself determines (format, sizes, statistics) always wins over the
    # given card, so a card copied from another file can never carry stale facts; its
    # sha256 is dropped and recomputed once the file exists.
    dims = data.dims.as_dict()
    # The attribute order below is the order they are written in, which the file's bytes
    # depend on: has_states stays between state_dim and action_type.
    full_card = {
        **{key: value for key, value in card.items() if key != "sha256"},
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        **{key: dims[key] for key in ("n_agents", "obs_dim", "state_dim")},
        "has_states": data.states is not None,
        **{key: dims[key] for key in ("action_type", "action_dim")},
        **dataset_statistics(data),
    }
    with atomic_output(path, overwrite) as tmp, h5py.File(tmp, "w") as handle:
        for field in fields(EpisodeDataset):
            array = getattr(data, field.name)
            if array is None:
                continue
            kwargs = (
                {"compression": compression, "shuffle": True} if array.size > 1024 and compression else {}
            )
            handle.create_dataset(field.name, data=array, **kwargs)
        handle.attrs["card_json"] = json.dumps(full_card, sort_keys=True)
        for key, value in full_card.items():
            if isinstance(value, (str, int, float, bool)):
                handle.attrs[key] = value
    full_card["sha256"] = sha256_file(path)
    with atomic_output(sidecar_path(path), overwrite=True) as tmp:
        tmp.write_text(render_card(path, full_card))
    return full_card


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".md")


def render_card(path: str | os.PathLike, card: dict[str, Any]) -> str:
    """The sidecar markdown: one table row per card entry."""
    lines = [f"# Dataset card: {Path(path).name}", "", "| key | value |", "|---|---|"]
    for key in sorted(card):
        value = card[key]
        text = (
            f"{value:.6g}"
            if isinstance(value, float)
            else json.dumps(value)
            if isinstance(value, (dict, list))
            else str(value)
        )
        lines.append(f"| {key} | {text} |")
    return "\n".join(lines) + "\n"


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card stored in a native file, without loading its arrays."""

    with _open(path) as handle:
        return _card_of(path, handle)


def read_native(path: str | os.PathLike) -> tuple[EpisodeDataset, dict[str, Any]]:
    """Load and validate a native file. Floats become float32 (float16 is kept)."""
    with _open(path) as handle:
        card = _card_of(path, handle)
        arrays: dict[str, np.ndarray] = {}
        for name in REQUIRED_FIELDS + OPTIONAL_FIELDS:
            if name not in handle:
                if name in REQUIRED_FIELDS:
                    raise DatasetError(path, name, "missing (required by the native format)")
                continue
            try:
                array = handle[name][()]
            except (OSError, RuntimeError) as error:
                raise DatasetError(
                    path, name, f"cannot be read (truncated or corrupt file?): {error}"
                ) from None
            if array.dtype == np.float64:
                array = array.astype(np.float32)
            arrays[name] = array
    rewards = arrays["rewards"]
    if rewards.ndim == 2:
        if not np.allclose(rewards, rewards[:, :1]):
            raise DatasetError(
                path, "rewards", "expected one team reward per step, found per-agent rewards that differ"
            )
        arrays["rewards"] = np.ascontiguousarray(rewards[:, 0])
    data = EpisodeDataset(**arrays)
    data.validate(path)
    return data, card


def _open(path: str | os.PathLike):
    import h5py

    path = Path(path)
    if not path.exists():
        raise DatasetError(path, None, "file not found")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DatasetError(path, None, f"not a readable HDF5 file (truncated or corrupt?): {error}") from None


def _card_of(path: str | os.PathLike, handle: Any) -> dict[str, Any]:
    if "card_json" not in handle.attrs:
        raise DatasetError(path, "card_json", "missing file attribute: not an omiga_pl native dataset")
    card = json.loads(handle.attrs["card_json"])
    if card.get("format") != FORMAT_NAME or card.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            path,
            "format_version",
            f"expected {FORMAT_NAME} v{FORMAT_VERSION}, found "
            f"{card.get('format')} v{card.get('format_version')}",
        )
    return card
