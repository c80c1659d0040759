"""Where a dataset named in a config lives: a path, a bundled file, or a registry name."""

from __future__ import annotations

from pathlib import Path

from omiga_pl.data.registry import lookup

# The checkout's root (bundled data lives in its data/); in an installed wheel this is
# site-packages, where no bundled file exists, so paths fall through to the registry.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def resolve_data_path(path: str) -> Path:
    """A dataset path as given, else relative to the project root (for bundled data),
    else a registry name (``data/registry.yaml``), whose file is checksum-verified."""
    given = Path(path).expanduser()
    if given.exists() or given.is_absolute():
        return given
    bundled = PROJECT_ROOT / given
    if bundled.exists():
        return bundled
    return lookup(str(path)) or given
