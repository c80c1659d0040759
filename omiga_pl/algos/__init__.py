"""The algorithm registry: ``algo.name`` -> LightningModule class.

Each class carries its config dataclass (``config_class``, whose keys are the schema of
``algo.*`` for that name) and the action types it defines (``action_types``). Adding an
algorithm = one module in this package, one line here, ``conf/algo/<name>.yaml`` equal
to its dataclass defaults (tested), and a page in ``docs/algorithms/``.
"""

from __future__ import annotations

from omiga_pl.algos.base import BaseAlgoConfig, OfflineAlgorithm
from omiga_pl.algos.bc import BCModule
from omiga_pl.algos.bcq import BCQModule
from omiga_pl.algos.cql import CQLModule
from omiga_pl.algos.icq import ICQModule
from omiga_pl.algos.omar import OmarModule
from omiga_pl.algos.omiga import OmigaModule
from omiga_pl.algos.omiga_local import OmigaLocalModule
from omiga_pl.errors import ConfigError

ALGORITHMS: dict[str, type[OfflineAlgorithm]] = {
    "omiga": OmigaModule,
    "omiga_local": OmigaLocalModule,
    "bc": BCModule,
    "icq": ICQModule,
    "cql": CQLModule,
    "bcq": BCQModule,
    "omar": OmarModule,
}

__all__ = ["ALGORITHMS", "BaseAlgoConfig", "OfflineAlgorithm", "algorithm_class", "algorithm_config_class"]


def algorithm_class(name: str, source: str = "config") -> type[OfflineAlgorithm]:
    """The module class registered as ``name``; a :class:`ConfigError` naming ``source`` if none."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ConfigError(
            f"{source}: key 'algo.name': expected one of {sorted(ALGORITHMS)}, found '{name}'"
        ) from None


def algorithm_config_class(name: str, source: str = "config") -> type[BaseAlgoConfig]:
    """The config dataclass of algorithm ``name``."""
    return algorithm_class(name, source).config_class
