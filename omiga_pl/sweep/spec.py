"""A sweep file: the grid of algorithms x datasets x seeds, and the cells it expands to.

Sweep file (YAML; every key but ``algorithms``, ``datasets`` and ``seeds`` optional)::

    name: snapshot                      # default: the file's stem
    out_dir: runs/sweeps/snapshot       # the sweep directory; default runs/sweeps/<name>
    threads: 1                          # torch threads per cell
    config: [conf/smac.yaml]            # fit configs every cell merges (in order)
    overrides: {trainer: {max_steps: 20000}}   # key=value for every cell (nested or dotted)
    algorithms:                         # label -> entry (or a list of algorithm names)
      omiga: {}                         # algo defaults to the label
      omiga_reference:
        algo: omiga
        config: conf/presets/reference.yaml
        overrides: {}
        datasets: [hopper_expert]       # only on these dataset labels
    datasets:                           # label -> path or registry name, or a mapping
      smax_3m_good: {path: data/smax_3m_good.h5, config: conf/smac.yaml}
      hopper_expert: data/mamujoco_hopper_3x1_expert.h5
    seeds: [0, 1, 2]                    # or a count: 3 -> [0, 1, 2]

A cell's fit config: the schema, then the ``config`` files of the sweep, the dataset
and the algorithm (in that order), then the overrides of the sweep, the dataset and the
algorithm, then the cell's own keys (``algo.name``, ``data.path``, ``seed``, ``threads``,
``log.out_dir`` = ``<out_dir>/<dataset>/<algorithm>``, ``log.run_name`` = ``seed_<s>``,
no progress bar). So its run directory is ``<out_dir>/<dataset>/<algorithm>/seed_<s>/``.

Every error names the sweep file and the key, says what was expected and what was found.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from omiga_pl.algos import ALGORITHMS
from omiga_pl.config import _read_yaml, load_config
from omiga_pl.data.paths import PROJECT_ROOT
from omiga_pl.errors import ConfigError, one_line

TOP_KEYS = ("name", "out_dir", "threads", "config", "overrides", "algorithms", "datasets", "seeds")
ALGO_KEYS = ("algo", "config", "overrides", "datasets")
DATASET_KEYS = ("path", "config", "overrides")
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Cell:
    """One fit run of the grid: everything a process needs to run (or resume) it."""

    dataset: str
    algorithm: str
    seed: int
    configs: tuple[str, ...]
    overrides: tuple[str, ...]
    run_dir: str

    @property
    def key(self) -> str:
        """``<dataset>/<algorithm>/seed_<s>``: the cell's name and its run directory below the sweep's."""
        return f"{self.dataset}/{self.algorithm}/seed_{self.seed}"

    def config(self) -> DictConfig:
        """The cell's resolved fit config (raises ConfigError naming the source)."""
        return load_config(list(self.configs), list(self.overrides))

    def fingerprint(self) -> str:
        """sha256 of the resolved config (``log.*`` aside): a cell whose config changed
        since it finished is not 'finished'."""
        config = OmegaConf.to_container(self.config(), resolve=True)
        config.pop("log", None)  # where it is written is not what it trains  # type: ignore[union-attr]
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Sweep:
    """A parsed sweep file."""

    path: Path
    name: str
    out_dir: Path
    threads: int
    cells: list[Cell] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        """Where the runner keeps its records: ``<out_dir>/sweep/``."""
        return self.out_dir / "sweep"


def _error(path: Path, key: str, expected: str, found: Any) -> ConfigError:
    shown = "null" if found is None else repr(found)
    return ConfigError(f"{path}: key '{key}': expected {expected}, found {shown}")


def _files(path: Path, key: str, value: Any) -> list[str]:
    """A config file or a list of them, each checked to exist."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        raise _error(path, key, "a config file path or a list of them", value)
    out = []
    for item in items:
        # As given (from the current directory), else from the project root, as data paths.
        found = next((p for p in (Path(item), PROJECT_ROOT / item) if p.is_file()), None)
        if found is None:
            raise ConfigError(f"{path}: key '{key}': config file {item} not found")
        out.append(str(found.resolve()))
    return out


def _flatten(tree: Any, prefix: str = "") -> list[str]:
    """``key=value`` strings of a (nested or dotted) mapping; lists and mappings as JSON
    (YAML flow style), which the dotlist parser reads back."""
    if isinstance(tree, dict) and tree:
        out: list[str] = []
        for key, value in tree.items():
            out += _flatten(value, f"{prefix}{key}.")
        return out
    if tree is None:
        text = "null"
    elif isinstance(tree, bool):
        text = "true" if tree else "false"
    elif isinstance(tree, list | dict):
        text = json.dumps(tree)
    else:
        text = str(tree)
    return [f"{prefix.rstrip('.')}={text}"]


def _overrides(path: Path, key: str, value: Any) -> list[str]:
    """Overrides as a mapping (nested or dotted keys) or a list of ``key=value`` strings."""
    if value is None:
        return []
    if isinstance(value, dict):
        return _flatten(value)
    if isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value):
        return list(value)
    raise _error(path, key, "a mapping of config keys or a list of key=value strings", value)


def _mapping(path: Path, key: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _error(path, key, f"a mapping with keys {list(allowed)}", value)
    for sub in value:
        if sub not in allowed:
            raise ConfigError(f"{path}: key '{key}.{sub}': unknown key (expected one of {list(allowed)})")
    return value


def _label(path: Path, key: str, label: Any) -> str:
    if not isinstance(label, str) or not LABEL.match(label):
        raise _error(path, key, "a label of letters, digits and _ . + - (a directory name)", label)
    return label


def _datasets(path: Path, value: Any) -> dict[str, dict[str, Any]]:
    if isinstance(value, list):
        value = {Path(str(item)).stem: item for item in value}
    if not isinstance(value, dict) or not value:
        raise _error(path, "datasets", "a non-empty mapping of label -> path (or a list of paths)", value)
    out = {}
    for label, entry in value.items():
        key = f"datasets.{label}"
        _label(path, key, label)
        entry = {"path": entry} if isinstance(entry, str) else _mapping(path, key, entry, DATASET_KEYS)
        if not isinstance(entry.get("path"), str) or not entry["path"].strip():
            raise _error(path, f"{key}.path", "a dataset path or registry name", entry.get("path"))
        out[label] = {
            "path": entry["path"],
            "config": _files(path, f"{key}.config", entry.get("config")),
            "overrides": _overrides(path, f"{key}.overrides", entry.get("overrides")),
        }
    return out


def _algorithms(path: Path, value: Any, datasets: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if isinstance(value, list):
        value = {name: {} for name in value}
    if not isinstance(value, dict) or not value:
        raise _error(path, "algorithms", "a non-empty mapping of label -> entry (or a list of names)", value)
    known = list(ALGORITHMS)
    out = {}
    for label, entry in value.items():
        key = f"algorithms.{label}"
        _label(path, key, label)
        entry = _mapping(path, key, entry, ALGO_KEYS)
        algo = entry.get("algo", label if label in known else None)
        if algo is not None and algo not in known:
            raise _error(path, f"{key}.algo", f"one of {known}", algo)
        only = entry.get("datasets")
        if only is not None:
            if not isinstance(only, list) or not only:
                raise _error(path, f"{key}.datasets", "a non-empty list of dataset labels", only)
            for name in only:
                if name not in datasets:
                    raise _error(path, f"{key}.datasets", f"dataset labels among {list(datasets)}", name)
        configs = _files(path, f"{key}.config", entry.get("config"))
        if algo is None and not configs:
            raise _error(path, f"{key}.algo", f"one of {known} (the label is not an algorithm)", None)
        out[label] = {
            "algo": algo,
            "config": configs,
            "overrides": _overrides(path, f"{key}.overrides", entry.get("overrides")),
            "datasets": only,
        }
    return out


def _seeds(path: Path, value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return list(range(value))
    if (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
        and len(set(value)) == len(value)
    ):
        return list(value)
    raise _error(path, "seeds", "a positive count or a list of distinct non-negative integers", value)


def read_sweep(path: str | Path, overrides: list[str] | None = None) -> Sweep:
    """Parse and check a sweep file (with ``key=value`` overrides of its own keys) and
    expand its grid into cells; every cell's fit config is built here, so a bad key
    anywhere fails before anything runs."""
    path = Path(path)
    loaded = _read_yaml(path)
    if overrides:
        for item in overrides:
            if "=" not in item or not item.split("=", 1)[0].strip():
                raise ConfigError(f"command line: override '{item}' is not of the form key=value")
            top = item.split("=", 1)[0].split(".")[0]
            if top not in TOP_KEYS:
                raise ConfigError(
                    f"command line: override '{item}': unknown sweep key '{top}' (expected one of "
                    f"{list(TOP_KEYS)}; fit keys go under overrides., e.g. overrides.trainer.max_steps=100)"
                )
        loaded = OmegaConf.merge(loaded, OmegaConf.from_dotlist(list(overrides)))
    raw = OmegaConf.to_container(loaded, resolve=True)
    assert isinstance(raw, dict)
    for key in raw:
        if key not in TOP_KEYS:
            raise ConfigError(f"{path}: key '{key}': unknown key (expected one of {list(TOP_KEYS)})")
    for key in ("algorithms", "datasets", "seeds"):
        if key not in raw:
            raise ConfigError(f"{path}: key '{key}': missing (a sweep needs algorithms, datasets and seeds)")
    name = raw.get("name", path.stem)
    _label(path, "name", name)
    out_dir = raw.get("out_dir", f"runs/sweeps/{name}")
    if not isinstance(out_dir, str) or not out_dir.strip():
        raise _error(path, "out_dir", "a directory path", out_dir)
    threads = raw.get("threads", 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads <= 0:
        raise _error(path, "threads", "a positive number of torch threads per cell", threads)
    datasets = _datasets(path, raw["datasets"])
    algorithms = _algorithms(path, raw["algorithms"], datasets)
    seeds = _seeds(path, raw["seeds"])
    shared_configs = _files(path, "config", raw.get("config"))
    shared = _overrides(path, "overrides", raw.get("overrides"))
    out_dir = str(Path(out_dir).resolve())
    sweep = Sweep(path=path, name=name, out_dir=Path(out_dir), threads=threads)
    for d_label, dataset in datasets.items():
        for a_label, algo in algorithms.items():
            if algo["datasets"] is not None and d_label not in algo["datasets"]:
                continue
            for seed in seeds:
                own = [f"data.path={dataset['path']}", f"seed={seed}", f"threads={threads}"]
                if algo["algo"] is not None:
                    own.insert(0, f"algo.name={algo['algo']}")
                own += [
                    f"log.out_dir={Path(out_dir) / d_label / a_label}",
                    f"log.run_name=seed_{seed}",
                    "trainer.enable_progress_bar=false",
                ]
                cell = Cell(
                    dataset=d_label,
                    algorithm=a_label,
                    seed=seed,
                    configs=tuple(shared_configs + dataset["config"] + algo["config"]),
                    overrides=tuple(shared + dataset["overrides"] + algo["overrides"] + own),
                    run_dir=str(Path(out_dir) / d_label / a_label / f"seed_{seed}"),
                )
                try:
                    cell.config()
                except ConfigError as error:
                    raise ConfigError(f"{path}: cell {cell.key}: {one_line(error)}") from None
                sweep.cells.append(cell)
    return sweep
