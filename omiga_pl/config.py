"""Typed experiment configuration: dataclasses that the YAML files in ``conf/`` must match.

Every hyperparameter is documented once, here. A YAML file is merged onto the schema
in OmegaConf struct mode, then ``key=value`` overrides are applied; an unknown key or
a value of the wrong type raises :class:`~omiga_pl.errors.ConfigError` naming the key
and the file (or ``command line``) it came from.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from omiga_pl.algos import algorithm_config_class
from omiga_pl.algos.base import BaseAlgoConfig
from omiga_pl.algos.omiga import OmigaConfig
from omiga_pl.errors import ConfigError, one_line

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
    # Every reward is multiplied by this at load (after reward_to_go), so TD targets, Q and
    # V scale by it; with algo.alpha scaled alike the advantage weights exp(w (Q - V) / alpha)
    # are the same at the critics' fixed point (what changes is how often algo.grad_clip
    # bites). 1.0 (default): as stored, the reference. Evaluation returns are the env's.
    reward_scale: float = 1.0
    # Observations and states the networks see: "none" (as stored, the OMIGA reference),
    # "standardize" (each feature standardised with the dataset's mean and std at load, the
    # evaluation env mapped the same way, as D4RL / CORL; MaMuJoCo reference-mode vectors,
    # which the reference standardised within themselves, are first decoded back to the
    # raw observation: omiga_pl/data/obs_norm.py), or "auto" (default): standardize on
    # MaMuJoCo reference-mode data (chosen by measurement, docs/algorithms/policies.md),
    # none elsewhere (not measured).
    obs_normalization: str = "auto"


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
    # Final evaluation (marl-eval's absolute_metrics) once training reaches
    # trainer.max_steps: this many episodes, on reset seeds disjoint from the periodic
    # ones, run in chunks of eval.episodes slots; written to final_eval.json.
    # null: 10 x eval.episodes (MaMuJoCo's 10 -> 100 episodes, about 20 s of Hopper
    # on one core); 0: no final evaluation.
    final_episodes: int | None = None


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
    # Seed ensemble: train one member per seed in this one process (omiga_pl/ensemble.py),
    # each equal to the single-seed run of its seed; records in <run dir>/seed_<s>/.
    # null: a single run of ``seed``.
    seeds: list[int] | None = None
    # torch intra-op threads; null leaves torch's default.
    threads: int | None = None
    # torch.compile the update's forward and backward (the algorithm's compute_losses):
    # null (eager), "default", "reduce-overhead" (CUDA graphs on a GPU) or "max-autotune".
    # Compiled kernels round differently from eager ones; docs/performance.md has the speed.
    compile: str | None = None
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
    base_source: str = "checkpoint config",
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
        if not isinstance(base, dict | DictConfig):
            raise ConfigError(
                f"{base_source}: expected a mapping of config keys, found {type(base).__name__}"
            )
        sources.append((base_source, base))
    for path in files or []:
        sources.append((str(path), _read_yaml(Path(path))))
    if overrides:
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"command line: override '{item}' is not of the form key=value")
            if not item.split("=", 1)[0].strip():
                raise ConfigError(f"command line: override '{item}' has no key (expected key=value)")
        sources.append(("command line", OmegaConf.from_dotlist(list(overrides))))
    name, name_source = _algorithm_name(sources)
    config = OmegaConf.structured(ExperimentConfig)
    config.algo = OmegaConf.structured(algorithm_config_class(name, name_source))
    for source, update in sources:
        config = _merge(config, update, source, name)
    try:
        _check_values(config)
    except ConfigError as error:
        raise ConfigError(_with_source(str(error), sources)) from None
    return config


def _with_source(message: str, sources: list[tuple[str, Any]]) -> str:
    """Append where the offending key was set (the last source that sets it)."""
    match = re.match(r"config: key '([^']+)'", message)
    if match is None:
        return message
    key = match.group(1)
    for source, update in reversed(sources):
        try:
            container = OmegaConf.to_container(update) if isinstance(update, DictConfig) else update
        except OmegaConfBaseException:
            continue
        keys = {leaf for leaf, _ in _leaves(container)} if isinstance(container, dict) else set()
        if key in keys or any(k.startswith(key + ".") for k in keys):
            where = "on the command line" if source == "command line" else f"in {source}"
            return f"{message} (set {where})"
    return message


def _read_yaml(path: Path) -> DictConfig:
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML config file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        loaded = OmegaConf.load(path)
    except yaml.MarkedYAMLError as error:  # report where, on one line
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML: {error.problem or error.context}{where}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not valid YAML: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except Exception as error:  # yaml.YAMLError, OmegaConf's own checks: report, don't trace
        text = one_line(error)
        if "Invalid loaded object type" in text:
            kind = {"int": "number", "float": "number", "str": "string", "bool": "boolean"}.get(
                text.rsplit(":", 1)[-1].strip(), text.rsplit(":", 1)[-1].strip()
            )
            raise ConfigError(
                f"{path}: expected a mapping of config keys at the top level, found a {kind}"
            ) from None
        raise ConfigError(f"{path}: not valid YAML: {text}") from None
    if not isinstance(loaded, DictConfig):
        kind = "list" if isinstance(loaded, ListConfig) else type(loaded).__name__
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, found a {kind}")
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
        key = getattr(error, "full_key", None) or _failing_key(base, update) or "?"
        reason = one_line(error).split(" full_key:")[0]
        if "not in struct" in reason or ("Key '" in reason and "not in" in reason):
            reason = "unknown key"
            if key.startswith("algo."):
                known = ", ".join(sorted(base.algo.keys()))
                reason += f" for algorithm '{algo_name}' (its keys: {known})"
        else:
            reason = _plain_reason(reason, _value_at(update, key), key)
        raise ConfigError(f"{source}: key '{key}': {reason}") from None


def _leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a mapping."""
    if not isinstance(tree, dict | DictConfig) or (prefix and len(tree) == 0):
        return [(prefix.rstrip("."), tree)]
    out: list[tuple[str, Any]] = []
    for key in tree:
        out += _leaves(tree[key], f"{prefix}{key}.")
    return out


def _failing_key(base: DictConfig, update: Any) -> str | None:
    """The dotted key whose value breaks a merge whose error names none (a section set to a scalar)."""
    try:
        container = OmegaConf.to_container(update) if isinstance(update, DictConfig) else update
    except OmegaConfBaseException:
        return None
    if not isinstance(container, dict):
        return None
    for key, value in _leaves(container):
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        try:
            OmegaConf.merge(base, nested)
        except OmegaConfBaseException:
            return key
    return None


def _value_at(update: Any, key: str) -> Any:
    node = update
    for part in key.split("."):
        part = part.split("[")[0]
        if isinstance(node, dict | DictConfig) and part in node:
            node = node[part]
        else:
            return None
    return OmegaConf.to_container(node) if isinstance(node, DictConfig | ListConfig) else node


def _plain_reason(reason: str, value: Any, key: str) -> str:
    """OmegaConf's wording without its internals (node classes, schema class names)."""
    found = "null" if value is None else repr(value)
    if "is not a subclass of" in reason or ("field '" in reason and "is not Optional" in reason):
        return f"expected a section of {key}.* keys, found {found}"
    if "is not a ListConfig" in reason:
        return f"expected a list, found {found}"
    if "Incompatible value 'None'" in reason:
        kind = reason.rsplit("of type", 1)[-1].strip(" '.")
        return f"expected a value of type {kind}, found null"
    reason = reason.replace("'DictConfig'", "a mapping").replace("'ListConfig'", "a list")
    return reason.replace("AnyNode", "value")


COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune")
SEED_MAX = 2**32 - 1  # numpy's seed range, which Lightning's seed_everything enforces


def _check_values(config: DictConfig) -> None:
    """Value checks the type system cannot express (the algorithm's own in its ``validate``)."""
    positive = {
        "data.batch_size": config.data.batch_size,
        "trainer.max_steps": config.trainer.max_steps,
        "trainer.num_nodes": config.trainer.num_nodes,
        "log.log_every": config.log.log_every,
        "log.checkpoint_every": config.log.checkpoint_every,
        "eval.every": config.eval.every,
        "eval.episodes": config.eval.episodes,
        "data.reward_scale": config.data.reward_scale,
    }
    for key, value in positive.items():
        if not value > 0 or value == float("inf"):  # also refuses nan and inf
            raise ConfigError(f"config: key '{key}': expected a positive value, found {value}")
    optional_positive = {
        "threads": config.threads,
        "env.episode_limit": config.env.episode_limit,
    }
    if config.eval.final_episodes is not None and config.eval.final_episodes < 0:
        raise ConfigError(
            "config: key 'eval.final_episodes': expected a non-negative number of episodes or null "
            f"(10 x eval.episodes), found {config.eval.final_episodes}"
        )
    for key, value in optional_positive.items():
        if value is not None and value <= 0:
            raise ConfigError(f"config: key '{key}': expected a positive value or null, found {value}")
    if config.env.agent_obsk is not None and config.env.agent_obsk < 0:
        raise ConfigError(
            "config: key 'env.agent_obsk': expected a non-negative depth or null, "
            f"found {config.env.agent_obsk}"
        )
    if config.env.obs_mode not in (None, "reference", "local"):
        raise ConfigError(
            "config: key 'env.obs_mode': expected 'reference', 'local' or null, "
            f"found '{config.env.obs_mode}'"
        )
    if config.seeds is not None:
        from omiga_pl.ensemble import check_ensemble_config

        check_ensemble_config(config.algo.name, list(config.seeds))
        for seed in config.seeds:
            if not 0 <= seed <= SEED_MAX - config.eval.seed_offset:
                raise ConfigError(
                    f"config: key 'seeds': seeds + eval.seed_offset must lie in [0, {SEED_MAX}], found {seed}"
                )
    if config.compile not in COMPILE_MODES:
        raise ConfigError(
            f"config: key 'compile': expected one of {list(COMPILE_MODES)}, found '{config.compile}'"
        )
    if not 0 <= config.seed <= SEED_MAX:
        raise ConfigError(f"config: key 'seed': expected an integer in [0, {SEED_MAX}], found {config.seed}")
    eval_seed = config.seed + config.eval.seed_offset
    if not 0 <= eval_seed <= SEED_MAX:
        raise ConfigError(
            f"config: key 'eval.seed_offset': seed + seed_offset must lie in [0, {SEED_MAX}], "
            f"found {config.seed} + {config.eval.seed_offset} = {eval_seed}"
        )
    for key in ("data.path", "log.out_dir"):
        if not str(OmegaConf.select(config, key)).strip():
            raise ConfigError(f"config: key '{key}': expected a path, found an empty string")
    name = config.log.run_name
    if name is not None and (not name.strip() or name in (".", "..") or "/" in name or "\\" in name):
        raise ConfigError(
            f"config: key 'log.run_name': expected a plain directory name (no '/', not '.' or '..') "
            f"or null, found '{name}'"
        )
    OmegaConf.to_object(config.algo).validate()
    if str(config.trainer.precision) in ("16-mixed", "16", "16-true"):
        raise ConfigError(
            "config: key 'trainer.precision': float16 needs a loss scaler that per-group clipping "
            "does not support; use '32-true' or 'bf16-mixed'"
        )


def final_episodes(config: DictConfig) -> int:
    """Episodes of the final evaluation: ``eval.final_episodes``, null meaning 10 x ``eval.episodes``."""
    value = config.eval.final_episodes
    return 10 * config.eval.episodes if value is None else int(value)


def to_container(config: DictConfig) -> dict:
    return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
