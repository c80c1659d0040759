"""Error types whose message is the whole story: file, field, expected, found.

The CLIs catch :class:`OmigaError` and print its message as one line (exit code 2)
instead of a traceback; library users get an ordinary ``ValueError`` subclass.
"""

from __future__ import annotations


class OmigaError(ValueError):
    """Base class for every user-facing input error raised by omiga_pl."""


class ConfigError(OmigaError):
    """A configuration file or override is wrong (unknown key, wrong type, bad value)."""


class DatasetError(OmigaError):
    """A dataset file does not match what was expected (format, shapes, values, env)."""

    def __init__(self, path: object, field: str | None, problem: str) -> None:
        where = f"{path}" if field is None else f"{path}: field '{field}'"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.field = field


class CheckpointError(OmigaError):
    """A checkpoint cannot be resumed with the given configuration."""


class OutputError(OmigaError):
    """An output (dataset, checkpoint, run directory, registry) cannot be written where asked."""


def one_line(text: object) -> str:
    """``text`` on one line: library messages (HDF5, YAML) often span several."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def os_reason(error: OSError) -> str:
    """The readable part of an OS error: 'No space left on device', 'Permission denied'..."""
    return error.strerror or one_line(error) or type(error).__name__
