"""Run directories: one per run, never shared, claimed only after every check has passed.

``plan_run_dir`` decides (without writing anything) where a run goes: a name given by
the user (``log.run_name``) that is taken by another run is refused; a default,
timestamped name that is taken gets a suffix. ``claim_run_dir`` then creates the
directory and holds an exclusive lock on its ``.lock`` file for as long as the run
lasts, so two processes can never train into the same directory; resuming a run
continues in its own directory under the same lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from omiga_pl.errors import ConfigError
from omiga_pl.io import check_directory_writable, make_parents, remove_created

LOCK_NAME = ".lock"


@dataclass
class RunDirectory:
    """A claimed run directory; ``release`` drops the lock, ``rollback`` undoes the claim."""

    path: Path
    created: bool
    lock: IO[str] | None = None
    created_parents: list[Path] = field(default_factory=list)

    def release(self) -> None:
        if self.lock is not None:
            with contextlib.suppress(OSError):
                self.lock.close()
            self.lock = None

    def rollback(self) -> None:
        """Remove the directory again if this claim created it and nothing else is in it."""
        self.release()
        if self.created:
            with contextlib.suppress(OSError):
                (self.path / LOCK_NAME).unlink(missing_ok=True)
                self.path.rmdir()
            remove_created(self.created_parents)


def _holder(lock_file: Path) -> str:
    try:
        pid = lock_file.read_text().strip()
    except OSError:
        pid = ""
    return f" (pid {pid})" if pid else ""


def _busy(run_dir: Path) -> bool:
    """Does another process hold this run directory's lock? (Only looks; creates nothing.)"""
    lock_file = run_dir / LOCK_NAME
    if not lock_file.is_file():
        return False
    try:
        with open(lock_file) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _in_use_error(run_dir: Path) -> ConfigError:
    return ConfigError(
        f"config: key 'log.run_name': run directory {run_dir} is in use by another run"
        f"{_holder(run_dir / LOCK_NAME)}; wait for it to finish or choose another log.run_name"
    )


def _is_empty(run_dir: Path) -> bool:
    return all(entry.name == LOCK_NAME for entry in run_dir.iterdir())


def plan_run_dir(out_dir: str, run_name: str, explicit: bool, own_run: bool) -> Path:
    """The directory this run will use; refuses (writes nothing) when it may not.

    ``explicit``: the name was given (config or checkpoint), so a taken name is refused
    unless ``own_run`` (a resume of the run that lives there). Otherwise the name is a
    default one and a taken name gets the first free suffix ``-2``, ``-3``...
    """
    root = Path(out_dir)
    check_directory_writable(root, "config: key 'log.out_dir'")
    run_dir = root / run_name
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(
            f"config: key 'log.run_name': {run_dir} exists and is a file, not a run directory; "
            "choose another log.run_name"
        )
    if explicit:
        if run_dir.is_dir() and _busy(run_dir):
            raise _in_use_error(run_dir)
        if run_dir.is_dir() and not own_run and not _is_empty(run_dir):
            raise ConfigError(
                f"config: key 'log.run_name': run directory {run_dir} already holds another run; choose "
                "another log.run_name, or continue that run with "
                f"--resume {run_dir / 'checkpoints' / 'last.ckpt'}"
            )
        return run_dir
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = root / f"{run_name}-{suffix}"
    return run_dir


class RunDirectoryTaken(ConfigError):
    """Another process created the planned run directory between planning and claiming."""


def claim_run_dir(run_dir: Path, fresh: bool) -> RunDirectory:
    """Create ``run_dir`` and take its lock for the run's lifetime.

    ``fresh``: the plan found no directory, so this claim must create it (exclusively:
    if another process created it meanwhile, :class:`RunDirectoryTaken`). Otherwise the
    directory exists (a resume of its run) and the lock decides who may use it.
    """
    parents: list[Path] = []
    try:
        parents = make_parents(run_dir.parent)
        if fresh:
            try:
                run_dir.mkdir()
            except FileExistsError:
                remove_created(parents)
                raise RunDirectoryTaken(
                    f"config: key 'log.run_name': run directory {run_dir} was just created by another run; "
                    "choose another log.run_name"
                ) from None
        lock = open(run_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held open for the whole run
    except OSError as error:
        remove_created(parents)
        raise ConfigError(
            f"config: key 'log.out_dir': cannot create run directory {run_dir}: {error.strerror or error}"
        ) from None
    claim = RunDirectory(run_dir, fresh, lock, parents)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        claim.release()  # the directory is the other run's: touch nothing
        raise _in_use_error(run_dir) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return claim
