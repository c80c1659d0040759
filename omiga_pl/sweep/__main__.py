import sys

from omiga_pl.sweep.runner import main

sys.exit(main())
