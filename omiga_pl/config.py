"""Typed experiment configuration: dataclasses that the YAML files in ``conf/`` must match.

Every hyperparameter is documented once, here. A YAML file is merged onto the schema
in OmegaConf struct mode, then ``key=value`` overrides are applied; an unknown key or
a value of the wrong type raises :class:`~omiga_pl.errors.ConfigError` naming the key
and the file (or ``command line``) it came from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from omiga_pl.algos import algorithm_config_class
from omiga_pl.algos.base import BaseAlgoConfig
from omiga_pl.algos.omiga import OmigaConfig
from omiga_pl.errors import ConfigError

# The default algorithm's config under its historical name.
AlgoConfig = OmigaConfig


@dataclass
class DataConfig:
    # Native HDF5 dataset (see omiga_pl/data/formats/native.py); relative paths are
    # resolved against the current directory, then against the project root.
    path: str = "data/smax_3m_medium.h5"
    # Transitions per update (per DDP rank).
    batch_size: int = 128
    # Keep the whole dataset on the accelerator and gather batches there.
    storage_on_device: bool = True
    # SMAC-reference quirk: replace each step's reward by the episode's undiscounted
    # reward-to-go before training. Off by default (step rewards).
    reward_to_go: bool = False


@dataclass
class EnvConfig:
    # Environment family and scenario; null takes them from the dataset card, a value
    # that disagrees with the card is an error.
    family: str | None = None
    scenario: str | None = None
    # Episode step limit; null keeps the dataset card's (or the env's default).
    episode_limit: int | None = None
    # MaMuJoCo observation mode: "reference" (every agent sees the full single-agent
    # observation + its one-hot id, standardised per vector, as the OMIGA reference) or
    # "local" (gymnasium-robotics local observations, zero-padded to the largest agent).
    # null takes the dataset card's; a value that disagrees with the card is an error
    # (a dataset's observations are stored in one mode).
    obs_mode: str | None = None
    # MaMuJoCo local-observation depth (gymnasium-robotics agent_obsk); null takes the
    # dataset card's, else 1.
    agent_obsk: int | None = None


@dataclass
class EvalConfig:
    enabled: bool = True
    # Evaluate every this many updates, and once at the end of training.
    every: int = 2000
    # Episodes per evaluation, run side by side in one vectorised env.
    episodes: int = 32
    # Seed offset of the evaluation episodes (its RNG is separate from training).
    seed_offset: int = 10_000


@dataclass
class TrainerConfig:
    # Passed straight to lightning.Trainer.
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    # Number of updates (offline RL trains for updates, not epochs).
    max_steps: int = 20_000
    enable_progress_bar: bool = True
    # Deterministic algorithms (bit-exact resume on CPU holds either way).
    deterministic: bool = False


@dataclass
class LogConfig:
    # Root of run directories: <out_dir>/<run_name>/ holds TensorBoard events,
    # config.yaml, eval.jsonl and checkpoints/.
    out_dir: str = "runs"
    # null: <algo>_<scenario>_<dataset stem>_s<seed>_<timestamp>.
    run_name: str | None = None
    # Scalars are written every this many updates.
    log_every: int = 100
    # A checkpoint every this many updates (last.ckpt is always kept up to date).
    checkpoint_every: int = 5000


@dataclass
class ExperimentConfig:
    seed: int = 0
    # torch intra-op threads; null leaves torch's default.
    threads: int | None = None
    data: DataConfig = field(default_factory=DataConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    # The algorithm's keys: the schema is the dataclass registered for ``algo.name``
    # (omiga_pl/algos/__init__.py), documented in that algorithm's module.
    algo: BaseAlgoConfig = field(default_factory=OmigaConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    log: LogConfig = field(default_factory=LogConfig)


def load_config(
    files: list[str | os.PathLike] | None = None,
    overrides: list[str] | None = None,
    base: dict | None = None,
) -> DictConfig:
    """Merge ``base`` (e.g. a checkpoint's config), YAML ``files`` (in order) and dotlist
    ``overrides`` onto the schema.

    The schema's ``algo`` section is the dataclass of the algorithm named by the last
    source that sets ``algo.name`` (default ``omiga``), so each algorithm's keys are
    checked against its own dataclass. Returns a struct-mode DictConfig typed by
    :class:`ExperimentConfig`.
    """
    sources: list[tuple[str, Any]] = []
    if base is not None:
        sources.append(("checkpoint config", base))
    for path in files or []:
        sources.append((str(path), _read_yaml(Path(path))))
    if overrides:
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"command line: override '{item}' is not of the form key=value")
        sources.append(("command line", OmegaConf.from_dotlist(list(overrides))))
    name, name_source = _algorithm_name(sources)
    config = OmegaConf.structured(ExperimentConfig)
    config.algo = OmegaConf.structured(algorithm_config_class(name, name_source))
    for source, update in sources:
        config = _merge(config, update, source, name)
    _check_values(config)
    return config


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        loaded = OmegaConf.load(path)
    except Exception as error:  # yaml.YAMLError and friends: report, don't trace
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(
            f"{path}: expected a mapping of config keys at the top level, found a {type(loaded).__name__}"
        )
    return loaded


def _algorithm_name(sources: list[tuple[str, Any]]) -> tuple[str, str]:
    """The ``algo.name`` set last among ``sources`` (and which source set it)."""
    name, name_source = "omiga", "config"
    for source, update in sources:
        algo = update.get("algo") if isinstance(update, dict | DictConfig) else None
        if isinstance(algo, dict | DictConfig) and algo.get("name") is not None:
            name, name_source = str(algo.get("name")), source
    return name, name_source


def _merge(base: DictConfig, update: Any, source: str, algo_name: str = "omiga") -> DictConfig:
    try:
        return OmegaConf.merge(base, update)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        reason = str(error).splitlines()[0]
        if "not in struct" in reason or ("Key '" in reason and "not in" in reason):
            reason = "unknown key"
            if key.startswith("algo."):
                known = ", ".join(sorted(base.algo.keys()))
                reason += f" for algorithm '{algo_name}' (its keys: {known})"
        raise ConfigError(f"{source}: key '{key}': {reason}") from None


def _check_values(config: DictConfig) -> None:
    """Value checks the type system cannot express (the algorithm's own in its ``validate``)."""
    positive = {
        "data.batch_size": config.data.batch_size,
        "trainer.max_steps": config.trainer.max_steps,
        "log.log_every": config.log.log_every,
        "log.checkpoint_every": config.log.checkpoint_every,
        "eval.every": config.eval.every,
        "eval.episodes": config.eval.episodes,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"config: key '{key}': expected a positive value, found {value}")
    OmegaConf.to_object(config.algo).validate()
    if str(config.trainer.precision) in ("16-mixed", "16", "16-true"):
        raise ConfigError(
            "config: key 'trainer.precision': float16 needs a loss scaler that per-group clipping "
            "does not support; use '32-true' or 'bf16-mixed'"
        )


def to_container(config: DictConfig) -> dict:
    return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
