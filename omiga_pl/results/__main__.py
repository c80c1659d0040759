import sys

from omiga_pl.results.cli import main

sys.exit(main())
