"""Safe output writing: never clobber a user's file, never leave half a file behind.

Every output is written to a temporary file in its destination's own directory, flushed
and fsynced, then renamed onto the destination (``os.replace``: atomic on one file
system, whatever file system that is). A failure at any point removes the temporary
file, leaves the destination as it was and raises one :class:`OutputError` naming it.
``check_destination`` refuses, before any work starts, destinations that cannot be
written: a directory, a path below a file, a read-only directory, too little free
space, or the source itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from omiga_pl.errors import OmigaError, OutputError, os_reason

MiB = 2**20


def temporary_name(path: Path) -> Path:
    """A hidden, unique name next to ``path`` (same directory, hence same file system)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_parents(directory: Path) -> list[Path]:
    """``mkdir -p directory``; returns the directories this call created (deepest last).

    Safe beside other processes making the same directories (sweep cells write records
    side by side): one made by someone else between the check and the ``mkdir`` is
    neither an error nor counted as created."""
    missing = []
    for parent in [directory, *directory.parents]:
        if parent.exists():
            break
        missing.append(parent)
    created = []
    for parent in reversed(missing):
        try:
            parent.mkdir()
        except FileExistsError:  # another process made it since the check: not ours to remove
            continue
        created.append(parent)
    return created


def remove_created(created: list[Path]) -> None:
    """Remove directories made by :func:`make_parents` again, if still empty."""
    for directory in reversed(created):
        with contextlib.suppress(OSError):
            directory.rmdir()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; fsync it and rename it onto ``path`` on success.

    Refuses an existing destination unless ``overwrite``. On any exception the
    temporary file (and any parent directory made for it) is removed and ``path`` is
    untouched; an ``OSError`` (disk full, permission) becomes one :class:`OutputError`.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory, expected a file path")
    if path.exists() and not overwrite:
        raise OmigaError(f"{path}: destination exists; pass --overwrite to replace it")
    try:
        created = make_parents(path.parent)
    except OSError as error:
        raise OutputError(f"{path}: cannot create its directory: {os_reason(error)}") from None
    tmp = temporary_name(path)
    kept = "the existing file is unchanged" if path.exists() else "nothing was written"
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except OSError as error:
        raise OutputError(f"{path}: cannot write: {os_reason(error)}; {kept}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if not path.exists():
            remove_created(created)
    fsync_directory(path.parent)


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    path = Path(os.path.abspath(path))
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path(path.anchor)


def check_directory_writable(directory: Path, what: str) -> None:
    """Refuse a directory that could not be created or written in (before any work).

    ``what`` is how the message names the place (e.g. ``config: key 'log.out_dir': runs``).
    """
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{what}: {directory} is a file, expected a directory")
    existing = nearest_existing(directory)
    if not existing.is_dir():
        raise OutputError(f"{what}: cannot create {directory}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{what}: cannot write in {existing}: permission denied (read-only?)")


def source_size(path: Path) -> int:
    """Bytes of a file, or of every file below a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def check_destination(
    dst: Path,
    overwrite: bool,
    source: Path | None = None,
    needed_bytes: int = 0,
    also: tuple[Path, ...] = (),
) -> None:
    """Refuse ``dst`` before any work if it cannot take the output.

    A directory, an existing file without ``overwrite``, the source itself (or a link to
    it, or a path inside a source directory), a path below a file, a directory that is not
    writable, or less free space than ``needed_bytes``. ``also``: companion outputs (a
    sidecar card) that must not be directories either.
    """
    for path in (dst, *also):
        if path.is_dir():
            raise OutputError(f"{path}: is a directory, expected a file path for the output")
    if source is not None and source.exists():
        if source.is_dir():
            if dst.resolve().is_relative_to(source.resolve()):
                raise OutputError(
                    f"{dst}: destination is inside the source directory {source}, which is never modified"
                )
        elif dst.resolve() == source.resolve() or (dst.exists() and os.path.samefile(source, dst)):
            raise OutputError(f"{dst}: destination is the source file {source} itself; write to another path")
    if dst.exists() and not overwrite:
        raise OmigaError(f"{dst}: destination exists; pass --overwrite to replace it")
    existing = nearest_existing(dst.parent)
    if not existing.is_dir():
        raise OutputError(f"{dst}: cannot be created: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{dst}: cannot write in {existing}: permission denied (read-only?)")
    if needed_bytes:
        free = shutil.disk_usage(existing).free
        if free < needed_bytes:
            raise OutputError(
                f"{dst}: not enough free space in {existing}: about {human_size(needed_bytes)} needed "
                f"(the source's size), {human_size(free)} free"
            )


def human_size(n_bytes: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", MiB), ("KiB", 2**10)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes} bytes"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
