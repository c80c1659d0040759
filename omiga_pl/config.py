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

from omiga_pl.errors import ConfigError


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
class AlgoConfig:
    name: str = "omiga"
    # OMIGA regularisation temperature (the reference hard-codes 10 for every task).
    alpha: float = 10.0
    gamma: float = 0.99
    # Polyak rate of the target nets (local Q, local V, mixer), applied every update.
    tau: float = 0.005
    # Adam learning rates per parameter group: local Q + mixer, local V, policy.
    lr_q: float = 5e-4
    lr_v: float = 5e-4
    lr_policy: float = 5e-4
    # Gradient-norm clip applied to each parameter group separately; <= 0 disables.
    grad_clip: float = 1.0
    # Continuous actions: dataset actions are clipped to (-1 + eps, 1 - eps) before atanh
    # in the policy's log-probability. 1e-7 is the reference's value; on datasets with many
    # saturated actions (exactly +-1) a larger eps (1e-3) fits them far better (data/README.md).
    action_eps: float = 1e-7
    # Hidden layer sizes of every per-agent MLP (Q, V, policy).
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    # Hidden units of the state-conditioned mixer.
    mixer_hidden: int = 64
    # Discrete actions: mask unavailable actions in the policy's training log-probs.
    # The reference does not (it masks only when acting).
    mask_unavailable_in_training: bool = False
    # torch.optim.Adam implementation: "foreach", "fused" or "for-loop".
    adam_impl: str = "foreach"


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
    algo: AlgoConfig = field(default_factory=AlgoConfig)
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

    Returns a struct-mode DictConfig typed by :class:`ExperimentConfig`.
    """
    config = OmegaConf.structured(ExperimentConfig)
    if base is not None:
        config = _merge(config, base, "checkpoint config")
    for path in files or []:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = OmegaConf.load(path)
        except Exception as error:  # yaml.YAMLError and friends: report, don't trace
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
        config = _merge(config, loaded, str(path))
    if overrides:
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"command line: override '{item}' is not of the form key=value")
        config = _merge(config, OmegaConf.from_dotlist(list(overrides)), "command line")
    _check_values(config)
    return config


def _merge(base: DictConfig, update: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, update)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        reason = str(error).splitlines()[0]
        if "not in struct" in reason or ("Key '" in reason and "not in" in reason):
            reason = "unknown key"
        raise ConfigError(f"{source}: key '{key}': {reason}") from None


def _check_values(config: DictConfig) -> None:
    """Value checks the type system cannot express."""
    positive = {
        "data.batch_size": config.data.batch_size,
        "trainer.max_steps": config.trainer.max_steps,
        "log.log_every": config.log.log_every,
        "log.checkpoint_every": config.log.checkpoint_every,
        "eval.every": config.eval.every,
        "eval.episodes": config.eval.episodes,
        "algo.alpha": config.algo.alpha,
        "algo.mixer_hidden": config.algo.mixer_hidden,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"config: key '{key}': expected a positive value, found {value}")
    if not 0.0 < config.algo.tau <= 1.0:
        raise ConfigError(f"config: key 'algo.tau': expected a value in (0, 1], found {config.algo.tau}")
    if not 0.0 <= config.algo.gamma <= 1.0:
        raise ConfigError(f"config: key 'algo.gamma': expected a value in [0, 1], found {config.algo.gamma}")
    if not 0.0 < config.algo.action_eps < 1.0:
        raise ConfigError(
            f"config: key 'algo.action_eps': expected a value in (0, 1), found {config.algo.action_eps}"
        )
    if config.algo.name != "omiga":
        raise ConfigError(f"config: key 'algo.name': expected one of ['omiga'], found '{config.algo.name}'")
    if config.algo.adam_impl not in ("foreach", "fused", "for-loop"):
        raise ConfigError(
            f"config: key 'algo.adam_impl': expected one of ['foreach', 'fused', 'for-loop'], "
            f"found '{config.algo.adam_impl}'"
        )
    if not config.algo.hidden_sizes or min(config.algo.hidden_sizes) <= 0:
        raise ConfigError(
            f"config: key 'algo.hidden_sizes': expected a non-empty list of positive sizes, "
            f"found {list(config.algo.hidden_sizes)}"
        )
    if str(config.trainer.precision) in ("16-mixed", "16", "16-true"):
        raise ConfigError(
            "config: key 'trainer.precision': float16 needs a loss scaler that per-group clipping "
            "does not support; use '32-true' or 'bf16-mixed'"
        )


def to_container(config: DictConfig) -> dict:
    return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
