"""What the command lines share: an argument parser whose errors are one line."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from omiga_pl.errors import one_line


class OneLineParser(argparse.ArgumentParser):
    """``argparse`` with usage errors as one ``<name>: error: ...`` line (exit 2), like
    every other error of the CLIs; the usage itself is one ``--help`` away."""

    error_name = "omiga_pl"

    def error(self, message: str) -> NoReturn:
        print(f"{self.error_name}: error: {one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parser_named(error_name: str) -> type[OneLineParser]:
    """A :class:`OneLineParser` subclass whose errors start with ``error_name``; sub-command
    parsers inherit it."""
    return type(f"{error_name.replace('.', '_')}_parser", (OneLineParser,), {"error_name": error_name})
