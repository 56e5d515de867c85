"""``python -m modelversions``: the command line (see :mod:`modelversions.cli`)."""

import sys

from modelversions.cli import main

if __name__ == "__main__":
    sys.exit(main())
