"""Observation standardisation with dataset statistics (``data.obs_normalization``).

Offline RL codebases standardise every state feature with the dataset's mean and std
before training and wrap the evaluation env the same way (D4RL's ``normalize_states``,
CORL's ``wrap_env``). Here that is :class:`ObservationNormalizer`: fitted once on the
dataset's rows, applied to the stored observations and states at load
(:class:`~omiga_pl.data.datamodule.OfflineMARLDataModule`) and to the env's at evaluation
(:class:`~omiga_pl.envs.normalized.NormalizedObservations`), so no algorithm sees a
difference and nothing is spent per update.

Two kinds, chosen by :func:`fit_normalizer` from the data:

* ``reference_decoded``: MaMuJoCo ``reference``-mode data (the OMIGA reference's layout).
  Each stored vector is ``z = (v - mean(v)) / std(v)`` with ``v = concat(g, one_hot(i))``:
  standardised *within itself*, so every feature depends on the whole vector's mean and
  spread (a fast joint velocity shifts every other feature). The one-hot entries undo it
  exactly: the agent's own id entry is ``(1 - m) / s``, any other ``-m / s``, so
  ``g = (z[:G] - z_zero) / (z_one - z_zero)`` (:func:`decode_reference`). Each feature of
  ``g`` is then standardised with the dataset's mean and std and the raw one-hot id
  appended: O and S (= N * O) keep their sizes, so the networks are unchanged.
* ``features``: any other data. Each observation feature (pooled over agents, so a shared
  policy sees one scale) and each state feature is standardised with the dataset's mean
  and std.

A feature whose std is below :data:`MIN_STD` (an id, padding) is centred only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from omiga_pl.errors import ConfigError, DatasetError

OBS_NORMALIZATIONS = ("auto", "none", "standardize")
# Features whose dataset std is below this are constant (ids, padding): centred, not scaled.
MIN_STD = 1e-6
# Largest |re-encoded - stored| accepted when decoding reference-mode vectors (float32 data).
DECODE_TOLERANCE = 1e-4
# Rows per chunk when transforming (keeps the float64 temporaries small on 1M-row files).
CHUNK_ROWS = 65536


def decode_reference(z: np.ndarray) -> np.ndarray:
    """Undo the reference's within-vector standardisation: [..., N, G + N] -> [..., N, G] float64.

    Agent i's vector ends with its standardised one-hot id; its own entry (the diagonal of
    the id block) is the largest, any other the smallest. Needs N >= 2 (a zero entry).
    """
    z = np.asarray(z, dtype=np.float64)
    n = z.shape[-2]
    ids = z[..., -n:]
    one = np.diagonal(ids, axis1=-2, axis2=-1)
    zero = ids.min(axis=-1)
    return (z[..., :-n] - zero[..., None]) / (one - zero)[..., None]


def is_reference_mode(family: str | None, card: Mapping[str, Any]) -> bool:
    """Does the data hold MaMuJoCo reference-mode vectors (a card without ``obs_mode``
    predates the local mode: reference, as :func:`~omiga_pl.envs.mamujoco.mamujoco_options`
    reads it)?"""
    return family == "mamujoco" and card.get("obs_mode", "reference") == "reference"


def resolve_obs_normalization(mode: str, family: str, card: Mapping[str, Any]) -> str:
    """``data.obs_normalization`` as it runs: ``auto`` is ``standardize`` on MaMuJoCo
    reference-mode data (measured: docs/algorithms/policies.md) and ``none`` elsewhere (not
    measured); the other values are themselves."""
    if mode not in OBS_NORMALIZATIONS:
        raise ConfigError(
            f"config: key 'data.obs_normalization': expected one of {list(OBS_NORMALIZATIONS)}, "
            f"found {mode!r}"
        )
    if mode != "auto":
        return mode
    return "standardize" if is_reference_mode(family, card) else "none"


@dataclasses.dataclass
class ObservationNormalizer:
    """Per-feature affine maps fitted on a dataset (module docstring).

    kind: ``reference_decoded`` or ``features``; n_agents: N; obs_mean / obs_std: [G] for
    ``reference_decoded`` (the decoded features), [O] for ``features``; state_mean /
    state_std: [S] for ``features``, None for ``reference_decoded`` (a state is the N
    agents' vectors, each mapped like an observation).
    """

    kind: str
    n_agents: int
    obs_mean: np.ndarray
    obs_std: np.ndarray
    state_mean: np.ndarray | None = None
    state_std: np.ndarray | None = None

    def observations(self, obs: np.ndarray) -> np.ndarray:
        """Stored/env observations [..., N, O] -> normalised [..., N, O] float32."""
        obs = np.asarray(obs)
        if self.kind == "features":
            return ((obs - self.obs_mean) / self.obs_std).astype(np.float32)
        features = (decode_reference(obs) - self.obs_mean) / self.obs_std
        ids = np.broadcast_to(np.eye(self.n_agents), (*obs.shape[:-1], self.n_agents))
        return np.concatenate([features, ids], axis=-1).astype(np.float32)

    def states(self, states: np.ndarray) -> np.ndarray:
        """Stored/env states [..., S] -> normalised [..., S] float32."""
        states = np.asarray(states)
        if self.kind == "features":
            return ((states - self.state_mean) / self.state_std).astype(np.float32)
        per_agent = states.reshape(*states.shape[:-1], self.n_agents, -1)
        return self.observations(per_agent).reshape(states.shape)

    def as_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (a checkpoint's datamodule state records it)."""
        return {
            key: value.tolist() if isinstance(value, np.ndarray) else value
            for key, value in dataclasses.asdict(self).items()
        }


def _mean_std(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and population std of [R, F] in float64 (two passes over chunks, so
    no float64 copy of a large file), constant columns given std 1."""

    def chunks() -> Any:
        for start in range(0, rows.shape[0], CHUNK_ROWS):
            yield np.asarray(rows[start : start + CHUNK_ROWS], dtype=np.float64)

    mean = sum(chunk.sum(0) for chunk in chunks()) / rows.shape[0]
    variance = sum(np.square(chunk - mean).sum(0) for chunk in chunks()) / rows.shape[0]
    std = np.sqrt(variance)
    return mean, np.where(std < MIN_STD, 1.0, std)


def _decoded_rows(path: object, observations: np.ndarray) -> np.ndarray:
    """Agent 0's decoded features of every row, [R, G], after checking that the stored
    vectors are reference-mode ones (re-encoding them gives them back)."""
    from omiga_pl.envs.mamujoco import reference_observations

    n_rows, n_agents, obs_dim = observations.shape
    if n_agents < 2 or obs_dim <= n_agents:
        raise DatasetError(
            path,
            "observations",
            f"data.obs_normalization=standardize decodes reference-mode MaMuJoCo vectors (full observation + "
            f"one-hot id, standardised per vector), which needs >= 2 agents and O > N; found N={n_agents}, "
            f"O={obs_dim}; set data.obs_normalization=none",
        )
    decoded = np.empty((n_rows, obs_dim - n_agents))
    worst = 0.0
    for start in range(0, n_rows, CHUNK_ROWS):
        chunk = observations[start : start + CHUNK_ROWS]
        with np.errstate(all="ignore"):  # vectors that are not reference ones may divide by 0
            g = decode_reference(chunk)
            error = float(np.abs(reference_observations(g[:, 0], n_agents) - chunk).max())
        # NaN (a vector with no spread) counts as the worst error, not as none.
        worst = max(worst, error if np.isfinite(error) else np.inf)
        decoded[start : start + len(chunk)] = g[:, 0]
    if worst > DECODE_TOLERANCE:
        raise DatasetError(
            path,
            "observations",
            "data.obs_normalization=standardize: the card says reference-mode MaMuJoCo observations (full "
            "observation + one-hot id, standardised per vector) but re-encoding the decoded vectors differs "
            f"from the stored ones by up to {worst:.3g} (expected <= {DECODE_TOLERANCE}); set "
            "data.obs_normalization=none",
        )
    return decoded


def fit_normalizer(
    path: object,
    observations: np.ndarray,
    states: np.ndarray | None,
    card: Mapping[str, Any],
) -> ObservationNormalizer:
    """The normaliser of a dataset's rows: observations [R, N, O], states [R, S] or None
    (then a state is the concatenated observations); ``card`` picks the kind (module doc)."""
    n_agents = observations.shape[1]
    if is_reference_mode(card.get("env_family"), card):
        mean, std = _mean_std(_decoded_rows(path, observations))
        if states is not None and states.shape[-1] != observations.shape[1] * observations.shape[2]:
            raise DatasetError(
                path,
                "states",
                f"reference-mode states are the {n_agents} agents' vectors concatenated "
                f"({observations.shape[1] * observations.shape[2]} values), found {states.shape[-1]}",
            )
        return ObservationNormalizer("reference_decoded", n_agents, mean, std)
    obs_mean, obs_std = _mean_std(observations.reshape(-1, observations.shape[-1]))
    if states is None:
        state_mean, state_std = np.tile(obs_mean, n_agents), np.tile(obs_std, n_agents)
    else:
        state_mean, state_std = _mean_std(states)
    return ObservationNormalizer("features", n_agents, obs_mean, obs_std, state_mean, state_std)


def normalize_rows(normalizer: ObservationNormalizer, rows: np.ndarray, states: bool = False) -> np.ndarray:
    """``normalizer`` applied to a dataset's rows chunk by chunk (a new float32 array)."""
    transform = normalizer.states if states else normalizer.observations
    out = np.empty(rows.shape, dtype=np.float32)
    for start in range(0, rows.shape[0], CHUNK_ROWS):
        out[start : start + CHUNK_ROWS] = transform(rows[start : start + CHUNK_ROWS])
    return out
