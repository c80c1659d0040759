"""Does a dataset fit an environment? One clear error per mismatch."""

from __future__ import annotations

import os
from typing import Any

from omiga_pl.data.formats.native import EpisodeDataset
from omiga_pl.envs.base import EnvSpec
from omiga_pl.errors import DatasetError


def check_dataset_matches_env(path: str | os.PathLike, data: EpisodeDataset, spec: EnvSpec) -> None:
    """Raise :class:`DatasetError` naming the first field where ``data`` and ``spec`` disagree."""
    expected: list[tuple[str, str, Any, Any]] = [
        ("observations", "agent count", spec.n_agents, data.n_agents),
        ("observations", "observation size", spec.obs_dim, data.obs_dim),
        ("actions", "action type", spec.action_type, data.action_type),
        (
            "actions",
            "actions per agent" if spec.action_type == "discrete" else "action size",
            spec.action_dim,
            data.action_dim,
        ),
    ]
    if data.states is not None:
        expected.append(("states", "state size", spec.state_dim, data.state_dim))
    for field, what, want, found in expected:
        if want != found:
            raise DatasetError(
                path,
                field,
                f"{what} does not match environment {spec.family}/{spec.scenario}: "
                f"expected {want}, found {found}",
            )
    if data.action_type == "discrete" and data.actions.max() >= spec.action_dim:
        raise DatasetError(
            path,
            "actions",
            f"expected indices < {spec.action_dim} for {spec.family}/{spec.scenario}, "
            f"found {data.actions.max()}",
        )


def check_card_matches_env(
    path: str | os.PathLike, card: dict, family: str | None, scenario: str | None
) -> None:
    """A configured env family/scenario must agree with the dataset card's."""
    for key, configured in (("env_family", family), ("scenario", scenario)):
        recorded = card.get(key)
        if configured is not None and recorded is not None and configured != recorded:
            raise DatasetError(
                path,
                key,
                f"dataset card records '{recorded}' but the config asks for '{configured}' "
                f"(env.{'family' if key == 'env_family' else 'scenario'})",
            )
