"""``python -m omiga_pl.generate_mamujoco``: the MaMuJoCo generator under its older name.

Dataset cards and ``data/registry.yaml`` record commands in this form, so it stays
runnable; it is :mod:`omiga_pl.generate.mamujoco` (``python -m omiga_pl.generate mamujoco``).
"""

from __future__ import annotations

import sys

from omiga_pl.generate.mamujoco import main as _main

PROG = "python -m omiga_pl.generate_mamujoco"


def main(argv: list[str] | None = None) -> int:
    return _main(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
