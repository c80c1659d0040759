"""The sub-commands of ``python -m omiga_pl.data``; each takes the parsed arguments."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from omiga_pl.data import registry
from omiga_pl.data.cli_show import registry_table, summary
from omiga_pl.data.formats.detect import DESCRIPTIONS, detect_format, load_dataset
from omiga_pl.data.formats.native import EpisodeDataset, sidecar_path, write_native
from omiga_pl.errors import ConfigError, DatasetError, OmigaError
from omiga_pl.io import check_destination, source_size


def _source(path: str, reg: str | None) -> Path:
    """A path as given, else a registry name (verified)."""
    given = Path(path).expanduser()
    if given.exists():
        return given
    found = registry.lookup(path, reg)
    if found is None:
        raise DatasetError(
            given, None, "not found (and not a registry name; see `python -m omiga_pl.data list`)"
        )
    return found


def _load(args: argparse.Namespace, path: Path, progress: bool) -> tuple[EpisodeDataset, dict[str, Any], str]:
    options = {
        "trust_pickle": getattr(args, "trust_pickle", False),
        "episode_limit": getattr(args, "episode_limit", None),
        "episode_length": getattr(args, "episode_length", None),
        "skip_ragged": getattr(args, "skip_ragged", False),
        "filled_counts": getattr(args, "filled_counts", None),
        "workers": getattr(args, "workers", None),
        "progress": progress,
    }
    data, card, fmt = load_dataset(path, args.source_format, **options)
    env = getattr(args, "set_env", None)
    if env:
        card["env_family"], card["scenario"] = parse_env(env, "--set-env")
    if getattr(args, "quality", None):
        card["quality"] = args.quality
    return data, card, fmt


def parse_env(text: str, flag: str = "--env") -> tuple[str, str]:
    """``family:scenario`` -> (family, scenario)."""
    family, sep, scenario = text.partition(":")
    if not sep or not family or not scenario:
        raise OmigaError(f"{flag}: expected FAMILY:SCENARIO (e.g. smax:3m), found '{text}'")
    return family, scenario


def cmd_inspect(args: argparse.Namespace) -> int:
    path = _source(args.path, args.registry)
    data, card, fmt = _load(args, path, progress=False)
    print(summary(str(path), fmt, data, card, bins=args.bins))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from omiga_pl.data.compat import check_dataset_matches_env
    from omiga_pl.envs import env_spec

    family, scenario = parse_env(args.env)
    path = _source(args.path, args.registry)
    data, card, fmt = _load(args, path, progress=False)
    try:
        spec = env_spec(family, scenario)
    except ConfigError as error:  # the env's own wording names env.* config keys
        raise OmigaError(f"--env {args.env}: {str(error).split(': ', 1)[-1]}") from None
    check_dataset_matches_env(path, data, spec)
    recorded = (card.get("env_family"), card.get("scenario"))
    if None not in recorded and recorded != (family, scenario):
        print(f"warning: the card records {recorded[0]}/{recorded[1]}, validated against {family}/{scenario}")
    longest = int(data.episode_lengths.max())
    limit = card.get("episode_limit") or spec.episode_limit
    if longest > limit:
        print(f"warning: the longest episode has {longest} steps, more than the episode limit {limit}")
    print(
        f"OK: {path} ({fmt}) matches {family}/{scenario}: {spec.dims.n_agents} agents, "
        f"obs {spec.dims.obs_dim}, state {data.dims.state_dim}, "
        f"{spec.dims.action_type} actions × {spec.dims.action_dim}; "
        f"{data.n_episodes} episodes, {data.n_transitions} transitions"
    )
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    fmt = detect_format(args.path)
    print(f"{fmt}: {DESCRIPTIONS.get(fmt, '')}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    src, dst = Path(args.src), Path(args.dst)
    if not src.exists():
        raise DatasetError(src, None, "not found")
    # Everything that could make the write fail is checked before the (long) import:
    # the destination, its sidecar card, its directory and the room left there.
    check_destination(
        dst, args.overwrite, source=src, needed_bytes=source_size(src), also=(sidecar_path(dst),)
    )
    if args.set_env:
        parse_env(args.set_env, "--set-env")
    if args.source_format is None:
        args.source_format = detect_format(src)
        print(f"detected format: {args.source_format}")
    data, card, fmt = _load(args, src, progress=not args.no_progress)
    card["command"] = "python -m omiga_pl.data " + shlex.join(
        sys.argv[1:] if args.argv is None else args.argv
    )
    card.setdefault("source_format", fmt)
    compression = None if args.compression == "none" else args.compression
    full = write_native(dst, data, card, overwrite=args.overwrite, compression=compression)
    print(
        f"wrote {dst}: {full['n_episodes']} episodes, {full['n_transitions']} transitions, "
        f"{full['n_agents']} agents, obs {full['obs_dim']}, state {full['state_dim']}, "
        f"{full['action_type']} actions × {full['action_dim']}; return mean {full['return_mean']:.4g}"
    )
    notes = card.get("derived") or ({"import_notes": card["import_notes"]} if "import_notes" in card else {})
    for key, value in notes.items():
        print(f"  derived {key}: {value}")
    print(
        f"sha256 {full['sha256']} (card: {dst}.md); add it to the registry with: "
        f"python -m omiga_pl.data register {dst}"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    entries = registry.load_registry(args.registry)
    if args.kind:
        entries = {n: e for n, e in entries.items() if e.get("kind") == args.kind}
    if not entries:
        print(f"{registry.registry_path(args.registry)}: no datasets")
        return 0
    print(registry_table(entries))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    entries = registry.load_registry(args.registry)
    names = args.names or [n for n, e in entries.items() if e.get("kind") != "published"]
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise OmigaError(f"{registry.registry_path(args.registry)}: no dataset named {unknown}")
    failures = []
    for name in names:
        status, detail = registry.verify_entry(name, entries[name], args.registry)
        print(f"{status:<11} {name}: {detail}")
        if status in ("mismatch", "missing", "no-checksum"):
            failures.append((name, status, detail))
    if failures:
        name, status, detail = failures[0]
        raise DatasetError(
            name, "sha256", f"{len(failures)} dataset(s) failed verification; first: {status}: {detail}"
        )
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    if args.name and len(args.paths) > 1:
        raise OmigaError("--name: only with a single PATH")
    for path in args.paths:
        name, entry = registry.register(path, args.name, args.kind, args.registry)
        print(f"registered {name} ({entry['kind']}): {entry['path']} sha256 {entry['sha256'][:16]}…")
    return 0
