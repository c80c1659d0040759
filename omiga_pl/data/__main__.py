"""``python -m omiga_pl.data``: inspect, validate, convert and register offline MARL datasets.

Sub-commands::

    inspect PATH                     card, dims, statistics, histogram of episode returns
    validate PATH --env smax:3m      check the dataset against an environment's spec
    convert SRC DST [--from FORMAT]  import a published layout into the native format
    detect PATH                      which format a path holds
    list                             the registry (data/registry.yaml)
    verify [NAME ...]                check the registered files' sha256
    register PATH [PATH ...]         add / refresh registry entries of native files

PATH may be a registry name. Sources are opened read-only and never modified;
outputs go to a temporary name and are renamed. Errors print one line and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from omiga_pl.cli import parser_named
from omiga_pl.data import cli_commands
from omiga_pl.data.formats.detect import DESCRIPTIONS
from omiga_pl.errors import OmigaError, one_line

PICKLE_HELP = (
    "omiga-smac only: unpickle episode files with Python's unrestricted unpickler. This EXECUTES "
    "code stored in the files: use it only for files from a source you trust. By default only "
    "arrays, tensors and plain containers are allowed and anything else is refused"
)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {value}")
    return value


def _source_options(parser: argparse.ArgumentParser) -> None:
    formats = ", ".join(DESCRIPTIONS)
    parser.add_argument(
        "--from",
        dest="source_format",
        metavar="FORMAT",
        help=f"source format ({formats}); detected when omitted",
    )
    parser.add_argument("--trust-pickle", action="store_true", help=PICKLE_HELP)
    parser.add_argument(
        "--episode-limit",
        type=positive_int,
        help="omiga-smac: mark episodes of exactly this many steps truncated (default: all terminated); "
        "omiga-mamujoco: the step limit that tells truncation from termination (default 1000)",
    )
    parser.add_argument(
        "--episode-length",
        type=positive_int,
        help="omar-mpe: fixed episode length instead of inferring boundaries",
    )
    parser.add_argument(
        "--filled-counts",
        choices=("rows", "steps"),
        help="pymarl: 'filled' marks the steps and the final observation row (rows, pymarl's "
        "default) or only the steps",
    )
    parser.add_argument(
        "--skip-ragged", action="store_true", help="omiga-smac: skip episodes whose agents differ in length"
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        help="omiga-smac: unpickle episode files in this many processes (default 1)",
    )
    parser.add_argument(
        "--registry", help="registry file (default: $OMIGA_PL_REGISTRY or data/registry.yaml)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = parser_named("omiga_pl.data")(
        prog="python -m omiga_pl.data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="show a dataset's card, dims, statistics and return histogram")
    p.add_argument("path", help="dataset path (any known format) or registry name")
    p.add_argument("--bins", type=positive_int, default=10, help="histogram bins (default 10)")
    _source_options(p)
    p.set_defaults(run=cli_commands.cmd_inspect)

    p = sub.add_parser("validate", help="check a dataset against an environment's spec")
    p.add_argument("path", help="dataset path (any known format) or registry name")
    p.add_argument("--env", required=True, metavar="FAMILY:SCENARIO", help="e.g. smax:3m")
    _source_options(p)
    p.set_defaults(run=cli_commands.cmd_validate)

    p = sub.add_parser("convert", help="convert a dataset to the native HDF5 format")
    p.add_argument("src", help="source file or directory (opened read-only)")
    p.add_argument("dst", help="native HDF5 file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    p.add_argument("--set-env", metavar="FAMILY:SCENARIO", help="environment recorded in the card")
    p.add_argument("--quality", help="quality label recorded in the card")
    p.add_argument("--compression", choices=("gzip", "lzf", "none"), default="gzip")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _source_options(p)
    p.set_defaults(run=cli_commands.cmd_convert)

    p = sub.add_parser("detect", help="print the format of a path")
    p.add_argument("path")
    p.set_defaults(run=cli_commands.cmd_detect)

    p = sub.add_parser("list", help="list the registry")
    p.add_argument("--kind", choices=("bundled", "generated", "published"))
    p.add_argument("--registry", help="registry file")
    p.set_defaults(run=cli_commands.cmd_list)

    p = sub.add_parser("verify", help="check registered files against their sha256")
    p.add_argument("names", nargs="*", help="registry names (default: every local entry)")
    p.add_argument("--registry", help="registry file")
    p.set_defaults(run=cli_commands.cmd_verify)

    p = sub.add_parser("register", help="add or refresh registry entries of native files")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--name", help="registry name (default: the file name without extension)")
    p.add_argument(
        "--kind", choices=("bundled", "generated"), help="default: bundled inside data/, else generated"
    )
    p.add_argument("--registry", help="registry file")
    p.set_defaults(run=cli_commands.cmd_register)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; :class:`OmigaError` becomes one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.run(args)
    except OmigaError as error:
        print(f"omiga_pl.data: error: {one_line(error)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0


if __name__ == "__main__":
    sys.exit(main())
