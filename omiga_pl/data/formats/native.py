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

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from omiga_pl.dims import ProblemDims
from omiga_pl.errors import DatasetError, one_line
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
        """Check every invariant of the format; raise :class:`DatasetError` on the first.

        Episode boundaries (lengths vs done flags) are checked before anything that
        depends on them, so a wrong ``episode_lengths`` is reported as such and not as
        a symptom in another field.
        """
        lengths = self.episode_lengths
        if lengths.ndim != 1:
            raise DatasetError(
                source,
                "episode_lengths",
                f"expected a 1-d array [E] of steps per episode, found shape {list(lengths.shape)}",
            )
        if lengths.shape[0] == 0:
            raise DatasetError(source, "episode_lengths", "the dataset contains no episodes")
        if not np.issubdtype(lengths.dtype, np.integer):
            raise DatasetError(
                source, "episode_lengths", f"expected positive integers, found {lengths.dtype}"
            )
        if (lengths < 1).any():
            e = int(np.argmin(lengths))
            raise DatasetError(
                source, "episode_lengths", f"expected positive integers, found {lengths[e]} at episode {e}"
            )
        n_steps, n_eps = int(lengths.sum()), lengths.shape[0]
        n_rows = n_steps + n_eps
        stored = _leading(self.actions)
        if stored is not None and stored != n_steps and _leading(self.observations) == stored + n_eps:
            raise DatasetError(
                source,
                "episode_lengths",
                f"the episodes sum to {n_steps} steps but the file holds {stored} transitions "
                f"(actions [{stored}], observations [{stored + n_eps}])",
            )
        _expect_shape(source, "observations", self.observations, (n_rows, None, None))
        _, n_agents, obs_dim = self.observations.shape
        if n_agents < 1 or obs_dim < 1:
            raise DatasetError(
                source,
                "observations",
                f"expected at least one agent and one feature, found shape {list(self.observations.shape)}",
            )
        _expect_float(source, "observations", self.observations)
        if self.actions.ndim not in (2, 3):
            raise DatasetError(
                source,
                "actions",
                f"expected shape [{n_steps}, {n_agents}] (discrete indices) or [{n_steps}, {n_agents}, A] "
                f"(continuous), found {list(self.actions.shape)}",
            )
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
            if self.actions.shape[2] < 1:
                raise DatasetError(source, "actions", "expected at least one action dimension, found 0")
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
        ends = np.cumsum(lengths) - 1
        is_end = np.zeros(n_steps, dtype=bool)
        is_end[ends] = True
        flagged = self.terminations | self.truncations
        if (flagged & ~is_end).any():
            if int(flagged.sum()) == n_eps and flagged[-1]:
                # The flags cut the steps into as many episodes, elsewhere: the lengths are off.
                implied = np.diff(np.concatenate([[-1], np.flatnonzero(flagged)]))
                e = int(np.argmax(implied != lengths))
                raise DatasetError(
                    source,
                    "episode_lengths",
                    f"disagree with the done flags: episode {e} has {lengths[e]} steps in episode_lengths "
                    f"but {implied[e]} by its terminations/truncations flags",
                )
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
                source,
                "truncations",
                f"episode {e} ends without a termination or truncation flag "
                "(episode_lengths disagree with the done flags)",
            )
        if (self.terminations & self.truncations).any():
            t = int(np.argmax(self.terminations & self.truncations))
            raise DatasetError(source, "truncations", f"transition {t} is both terminated and truncated")
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
            if self.episode_won.dtype != np.bool_:
                raise DatasetError(source, "episode_won", f"expected bool, found {self.episode_won.dtype}")


def _leading(array: np.ndarray) -> int | None:
    return int(array.shape[0]) if array.ndim >= 1 else None


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
    # HDF5 builds the file in memory (the same bytes it would write to disk); only plain
    # Python I/O touches the disk. HDF5 itself, on a write error such as a full disk,
    # leaves its state broken and can crash the interpreter at exit.
    image = _hdf5_image(data, full_card, compression)
    with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as out:
        out.write(image)
    full_card["sha256"] = sha256_file(path)
    with atomic_output(sidecar_path(path), overwrite=True) as tmp:
        tmp.write_text(render_card(path, full_card))
    return full_card


def _hdf5_image(data: EpisodeDataset, card: dict[str, Any], compression: str | None) -> bytes:
    """The bytes of the native file holding ``data`` and ``card``, built in memory."""
    import h5py

    handle = h5py.File(f"omiga_pl-{uuid.uuid4().hex}.h5", "w", driver="core", backing_store=False)
    try:
        for field in fields(EpisodeDataset):
            array = getattr(data, field.name)
            if array is None:
                continue
            kwargs = (
                {"compression": compression, "shuffle": True} if array.size > 1024 and compression else {}
            )
            handle.create_dataset(field.name, data=array, **kwargs)
        handle.attrs["card_json"] = json.dumps(card, sort_keys=True)
        for key, value in card.items():
            if isinstance(value, (str, int, float, bool)):
                handle.attrs[key] = value
        handle.flush()
        return handle.id.get_file_image()
    finally:
        handle.close()


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
    """The card stored in a native file, checked field by field, without loading its arrays."""

    with _open(path) as handle:
        return _card_of(path, handle)


def read_native(path: str | os.PathLike) -> tuple[EpisodeDataset, dict[str, Any]]:
    """Load and validate a native file. Floats become float32 (float16 is kept).

    The card's sizes and counts must agree with the arrays they describe.
    """
    import h5py

    with _open(path) as handle:
        card = _card_of(path, handle)
        arrays: dict[str, np.ndarray] = {}
        for name in REQUIRED_FIELDS + OPTIONAL_FIELDS:
            if name not in handle:
                if name in REQUIRED_FIELDS:
                    raise DatasetError(path, name, "missing (required by the native format)")
                continue
            node = handle[name]
            if not isinstance(node, h5py.Dataset):
                raise DatasetError(
                    path, name, f"expected an array (HDF5 dataset), found an HDF5 {_kind(node)}"
                )
            try:
                array = np.asarray(node[()])
            except (OSError, RuntimeError, TypeError, ValueError) as error:
                raise DatasetError(
                    path, name, f"cannot be read (truncated or corrupt file?): {one_line(error)}"
                ) from None
            if array.dtype == np.float64:
                array = array.astype(np.float32)
            arrays[name] = array
    rewards = arrays["rewards"]
    if rewards.ndim == 2 and np.issubdtype(rewards.dtype, np.number):
        if not np.allclose(rewards, rewards[:, :1]):
            raise DatasetError(
                path, "rewards", "expected one team reward per step, found per-agent rewards that differ"
            )
        arrays["rewards"] = np.ascontiguousarray(rewards[:, 0])
    data = EpisodeDataset(**arrays)
    data.validate(path)
    check_card_matches_data(path, card, data)
    return data, card


def check_card_matches_data(path: str | os.PathLike, card: dict[str, Any], data: EpisodeDataset) -> None:
    """The facts a card records about its file (sizes, counts) must be the file's."""
    dims = data.dims.as_dict()
    facts = {
        **{key: dims[key] for key in ("n_agents", "obs_dim", "action_type", "action_dim")},
        "has_states": data.states is not None,
        "n_episodes": data.n_episodes,
        "n_transitions": data.n_transitions,
    }
    if data.states is not None:
        facts["state_dim"] = dims["state_dim"]
    for key, value in facts.items():
        if key in card and card[key] != value:
            raise DatasetError(
                path,
                key,
                f"the dataset card records {card[key]!r} but the arrays hold {value!r} "
                "(card and data disagree: the card was edited, or belongs to another file)",
            )


def dataset_fingerprint(data: EpisodeDataset) -> str:
    """sha256 of a dataset's content: every array's name, dtype, shape and bytes.

    Independent of the file's compression and chunking; about 1 GB/s (a few
    milliseconds for the bundled files)."""
    digest = hashlib.sha256()
    for field in fields(EpisodeDataset):
        array = getattr(data, field.name)
        if array is None:
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{field.name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _kind(node: Any) -> str:
    import h5py

    return "group" if isinstance(node, h5py.Group) else type(node).__name__


def _open(path: str | os.PathLike):
    import h5py

    path = Path(path)
    if not path.exists():
        raise DatasetError(path, None, "file not found")
    if path.is_dir():
        raise DatasetError(
            path,
            None,
            "is a directory, expected a native HDF5 file (a dataset in another layout? "
            "convert it: python -m omiga_pl.data convert DIR OUT.h5)",
        )
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DatasetError(path, None, hdf5_open_problem(path, error)) from None


def hdf5_open_problem(path: Path, error: OSError) -> str:
    """Why h5py could not open ``path``, in one line (HDF5's own text spans several)."""
    text = one_line(error)
    size = path.stat().st_size if path.is_file() else None
    if size == 0:
        return "not an HDF5 file: the file is empty"
    if "signature not found" in text:
        return "not an HDF5 file (no HDF5 signature; truncated or corrupt?)"
    truncated = re.search(r"eof = (\d+).*stored_eof = (\d+)", text)
    if truncated:
        return f"truncated or corrupt HDF5 file: it ends at byte {truncated.group(1)} of {truncated.group(2)}"
    if error.errno is not None and error.strerror:
        return f"cannot be opened: {error.strerror}"
    reason = re.sub(r"^Unable to (synchronously )?open file \((.*)\)$", r"\2", text)
    return f"not a readable HDF5 file (truncated or corrupt?): {reason[:200]}"


def _card_of(path: str | os.PathLike, handle: Any) -> dict[str, Any]:
    if "card_json" not in handle.attrs:
        raise DatasetError(path, "card_json", "missing file attribute: not an omiga_pl native dataset")
    try:
        text = handle.attrs["card_json"]
    except (OSError, RuntimeError, TypeError) as error:
        raise DatasetError(path, "card_json", f"cannot be read: {one_line(error)}") from None
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise DatasetError(path, "card_json", f"expected a JSON text attribute, found {type(text).__name__}")
    try:
        card = json.loads(text)
    except ValueError as error:
        raise DatasetError(path, "card_json", f"not valid JSON: {one_line(error)}") from None
    if not isinstance(card, dict):
        raise DatasetError(
            path, "card_json", f"expected a JSON object of card fields, found {_json_kind(card)}"
        )
    if card.get("format") != FORMAT_NAME or card.get("format_version") != FORMAT_VERSION:
        field = "format" if card.get("format") != FORMAT_NAME else "format_version"
        found = json.dumps(card[field]) if field in card else "no such field"
        raise DatasetError(
            path,
            field,
            f"expected format {FORMAT_NAME!r} version {FORMAT_VERSION} (an omiga_pl native card), "
            f"found {found}",
        )
    validate_card(path, card)
    return card


def _json_kind(value: Any) -> str:
    return {list: "a list", type(None): "null", str: "a string", bool: "a boolean"}.get(
        type(value), f"a number ({value!r})" if isinstance(value, int | float) else type(value).__name__
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


# Card fields omiga_pl reads: what each must hold (absent is always allowed).
CARD_FIELDS: dict[str, tuple[str, Any]] = {
    "env_family": ("a non-empty string", _is_text),
    "scenario": ("a non-empty string", _is_text),
    "episode_limit": ("a positive integer or null", lambda v: v is None or (_is_int(v) and v > 0)),
    "quality": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "obs_mode": ("'reference' or 'local'", lambda v: v in ("reference", "local")),
    "agent_obsk": ("a non-negative integer", lambda v: _is_int(v) and v >= 0),
    "observation_version": ("'v2' or 'v5'", lambda v: v in ("v2", "v5")),
    "evaluation_refused": (
        "a string (the reason), false or null",
        lambda v: v in (None, False) or _is_text(v),
    ),
    "reference_returns": (
        "a mapping of names to finite numbers",
        lambda v: isinstance(v, dict) and all(x is None or _is_number(x) for x in v.values()),
    ),
    "derived": ("a mapping of field names to notes", lambda v: isinstance(v, dict)),
    "n_agents": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "obs_dim": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "state_dim": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "action_dim": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "action_type": ("'discrete' or 'continuous'", lambda v: v in ("discrete", "continuous")),
    "has_states": ("true or false", lambda v: isinstance(v, bool)),
    **{
        key: ("a non-negative integer", lambda v: _is_int(v) and v >= 0)
        for key in ("n_episodes", "n_transitions", "n_terminations", "n_truncations")
    },
    **{
        key: ("a finite number", _is_number)
        for key in (
            "return_mean",
            "return_std",
            "return_min",
            "return_max",
            "episode_length_mean",
            "win_rate",
        )
    },
    "command": ("a string", lambda v: isinstance(v, str)),
    "source_format": ("a string", lambda v: isinstance(v, str)),
}


def validate_card(path: str | os.PathLike, card: dict[str, Any]) -> None:
    """Every card field omiga_pl reads holds what it should (:data:`CARD_FIELDS`).

    Raises :class:`DatasetError` naming the first field that does not."""
    for key, (expected, ok) in CARD_FIELDS.items():
        if key in card and not ok(card[key]):
            raise DatasetError(path, key, f"dataset card: expected {expected}, found {json.dumps(card[key])}")
