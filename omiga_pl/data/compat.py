"""Does a dataset fit an environment? One clear error per mismatch."""

from __future__ import annotations

import os

from omiga_pl.data.formats.native import EpisodeDataset
from omiga_pl.envs.base import EnvSpec
from omiga_pl.errors import DatasetError


def check_dataset_matches_env(path: str | os.PathLike, data: EpisodeDataset, spec: EnvSpec) -> None:
    """Raise :class:`DatasetError` naming the first field where ``data`` and ``spec`` disagree.

    The two :class:`~omiga_pl.dims.ProblemDims` are compared size by size, each under the
    dataset field that holds it; the state size only when the dataset stores states (else
    it is the concatenated observations', which the observation size already checks).
    """
    want, found = spec.dims, data.dims
    checks: list[tuple[str, str, str]] = [
        ("observations", "agent count", "n_agents"),
        ("observations", "observation size", "obs_dim"),
        ("actions", "action type", "action_type"),
        ("actions", "actions per agent" if want.action_type == "discrete" else "action size", "action_dim"),
    ]
    if data.states is not None:
        checks.append(("states", "state size", "state_dim"))
    for field, what, name in checks:
        expected, actual = getattr(want, name), getattr(found, name)
        if expected != actual:
            raise DatasetError(
                path,
                field,
                f"{what} does not match environment {spec.family}/{spec.scenario}: "
                f"expected {expected}, found {actual}",
            )
    if found.action_type == "discrete" and data.actions.max() >= want.action_dim:
        raise DatasetError(
            path,
            "actions",
            f"expected indices < {want.action_dim} for {spec.family}/{spec.scenario}, "
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
