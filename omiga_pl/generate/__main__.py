"""``python -m omiga_pl.generate``: see :mod:`omiga_pl.generate`."""

import sys

from omiga_pl.generate import main

sys.exit(main())
