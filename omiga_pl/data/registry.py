"""The dataset registry (``data/registry.yaml``): names, checksums and where data comes from.

Entries are of three kinds:

- ``bundled``: a native file shipped in ``data/`` (path relative to the registry file);
- ``generated``: a native file made here (``omiga_pl.generate`` or ``convert``), added
  with ``python -m omiga_pl.data register PATH``;
- ``published``: a dataset by its original name, with where users get it; omiga_pl
  never downloads anything. Convert it, then register the result.

A registry name can stand wherever a dataset path is expected (``data.path`` in the
config). Resolving a name checks the file's sha256; digests are cached by (path, size,
mtime) in ``$OMIGA_PL_CACHE/sha256.json`` (default ``~/.cache/omiga_pl``), so a file
is hashed again only when it changes. The registry file is written by ``register`` —
never edit hashes by hand.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from omiga_pl.data.formats.native import read_native, sidecar_path
from omiga_pl.errors import DatasetError, OmigaError, OutputError, os_reason
from omiga_pl.io import atomic_output, check_destination, sha256_file

REGISTRY_ENV = "OMIGA_PL_REGISTRY"
CACHE_ENV = "OMIGA_PL_CACHE"
DEFAULT_REGISTRY = Path(__file__).resolve().parent.parent.parent / "data" / "registry.yaml"
KINDS = ("bundled", "generated", "published")
HEADER = """\
# omiga_pl dataset registry. Written by `python -m omiga_pl.data register PATH`;
# do not edit sha256 values by hand. Published entries describe datasets by their
# original names and where to get them (nothing is downloaded by omiga_pl); convert
# one with `python -m omiga_pl.data convert SRC DST`, then register DST.
"""


def registry_path(path: str | os.PathLike | None = None) -> Path:
    """The registry file: ``path``, else ``$OMIGA_PL_REGISTRY``, else ``data/registry.yaml``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY)


def load_registry(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Name -> entry. A missing registry file is an empty registry."""
    path = registry_path(path)
    if path.is_dir():
        raise OutputError(f"{path}: the registry is a directory, expected a YAML file")
    if not path.exists():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise DatasetError(path, None, f"not valid YAML: {str(error).splitlines()[0]}") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = os_reason(error) if isinstance(error, OSError) else str(error)
        raise DatasetError(path, None, f"cannot read the registry: {reason}") from None
    datasets = loaded.get("datasets") if isinstance(loaded, dict) else None
    if not isinstance(datasets, dict):
        raise DatasetError(path, "datasets", "expected a mapping of dataset names to entries")
    for name, entry in datasets.items():
        if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
            raise DatasetError(path, str(name), f"expected an entry with kind in {list(KINDS)}")
    return datasets


def save_registry(entries: dict[str, dict[str, Any]], path: str | os.PathLike | None = None) -> Path:
    """Write the registry atomically, entries sorted by kind then name."""
    path = registry_path(path)
    order = sorted(entries, key=lambda n: (KINDS.index(entries[n]["kind"]), n))
    body = yaml.safe_dump(
        {"version": 1, "datasets": {n: entries[n] for n in order}}, sort_keys=False, width=100
    )
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(HEADER + body)
    return path


def entry_file(name: str, entry: dict[str, Any], registry: str | os.PathLike | None = None) -> Path | None:
    """Local file of an entry (relative paths are relative to the registry file), or None."""
    if entry.get("kind") == "published" or not entry.get("path"):
        return None
    path = Path(entry["path"]).expanduser()
    return path if path.is_absolute() else registry_path(registry).parent / path


# -- checksums ------------------------------------------------------------------------


def _cache_file() -> Path:
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "omiga_pl"
    return Path(root) / "sha256.json"


def cached_sha256(path: str | os.PathLike) -> str:
    """sha256 of ``path``, reusing the cached digest while its size and mtime are unchanged."""
    path = Path(path).resolve()
    stat = path.stat()
    key = str(path)
    cache_file = _cache_file()
    try:
        cache = json.loads(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    hit = cache.get(key)
    if isinstance(hit, dict) and hit.get("size") == stat.st_size and hit.get("mtime_ns") == stat.st_mtime_ns:
        return str(hit["sha256"])
    digest = sha256_file(path)
    cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    try:  # a cache that cannot be written only costs a re-hash next time
        with atomic_output(cache_file, overwrite=True) as tmp:
            tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
    except (OSError, OutputError):
        pass
    return digest


def verify_entry(
    name: str, entry: dict[str, Any], registry: str | os.PathLike | None = None
) -> tuple[str, str]:
    """``(status, detail)`` with status one of ok, mismatch, missing, no-checksum, published."""
    path = entry_file(name, entry, registry)
    if path is None:
        return "published", f"not local; get it from: {entry.get('source', '?')}"
    if not path.is_file():
        return "missing", f"{path} not found"
    expected = entry.get("sha256")
    if not expected:
        return "no-checksum", f"{path}: registry has no sha256 (run register)"
    found = cached_sha256(path)
    if found != expected:
        return "mismatch", f"{path}: expected sha256 {expected[:16]}…, found {found[:16]}…"
    return "ok", str(path)


def resolve(name: str, registry: str | os.PathLike | None = None) -> Path:
    """The verified local file of registry entry ``name``."""
    entries = load_registry(registry)
    if name not in entries:
        raise OmigaError(
            f"{registry_path(registry)}: no dataset named '{name}' (see python -m omiga_pl.data list)"
        )
    entry = entries[name]
    status, detail = verify_entry(name, entry, registry)
    if status == "published":
        raise DatasetError(
            name,
            None,
            f"a published dataset that is not on this machine; get it from {entry.get('source', '?')}, "
            "convert it with `python -m omiga_pl.data convert SRC DST` and register DST",
        )
    path = entry_file(name, entry, registry)
    if status == "missing":
        hint = f"; it was made by: {entry['command']}" if entry.get("command") else ""
        raise DatasetError(path, None, f"registered as '{name}' but not found{hint}")
    if status == "mismatch":
        raise DatasetError(
            path,
            "sha256",
            f"checksum mismatch for registry entry '{name}': {detail.split(': ', 1)[1]} "
            "(file changed or corrupt; if you regenerated it on purpose, run "
            f"`python -m omiga_pl.data register {path}`)",
        )
    return path  # type: ignore[return-value]


def lookup(name: str, registry: str | os.PathLike | None = None) -> Path | None:
    """Like :func:`resolve`, but None when ``name`` is not in the registry at all."""
    if name not in load_registry(registry):
        return None
    return resolve(name, registry)


# -- registering ----------------------------------------------------------------------

ENTRY_FROM_CARD = (
    "quality",
    "n_agents",
    "obs_dim",
    "state_dim",
    "action_type",
    "action_dim",
    "episode_limit",
    "n_episodes",
    "n_transitions",
    "return_mean",
    "return_std",
    "win_rate",
    "source_format",
    "command",
)


def sidecar_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 recorded in the sidecar card ``<path>.md``, if there is one."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    match = re.search(r"^\|\s*sha256\s*\|\s*([0-9a-f]{64})\s*\|", sidecar.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def register(
    path: str | os.PathLike,
    name: str | None = None,
    kind: str | None = None,
    registry: str | os.PathLike | None = None,
) -> tuple[str, dict[str, Any]]:
    """Add or refresh the entry of native file ``path``; returns ``(name, entry)``.

    The whole file is read and validated first (a registered name must train); the
    sha256 comes from the sidecar card when there is one, after checking that the file
    still hashes to it. The registry file is checked writable before anything is done.
    """
    path = Path(path)
    check_destination(registry_path(registry), overwrite=True)
    _, card = read_native(path)
    digest = cached_sha256(path)
    recorded = sidecar_sha256(path)
    if recorded is not None and recorded != digest:
        raise DatasetError(
            path,
            "sha256",
            f"the sidecar card records {recorded[:16]}… but the file hashes to {digest[:16]}…: "
            "the file changed after its card was written; regenerate it",
        )
    reg_file = registry_path(registry)
    reg_dir = reg_file.parent.resolve()
    resolved = path.resolve()
    inside = resolved.is_relative_to(reg_dir)
    kind = kind or ("bundled" if inside else "generated")
    if kind not in ("bundled", "generated"):
        raise OmigaError(f"--kind: expected 'bundled' or 'generated', found '{kind}'")
    name = name or path.stem
    entry: dict[str, Any] = {
        "kind": kind,
        "path": str(resolved.relative_to(reg_dir)) if inside else str(resolved),
        "sha256": digest,
        "size_bytes": resolved.stat().st_size,
        "format": "native",
        "env": f"{card.get('env_family', '?')}:{card.get('scenario', '?')}",
    }
    entry.update({key: card[key] for key in ENTRY_FROM_CARD if key in card})
    entries = load_registry(registry)
    entries[name] = entry
    save_registry(entries, registry)
    return name, entry
