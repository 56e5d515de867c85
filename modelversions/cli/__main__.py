"""``python -m modelversions.cli``: the same as ``python -m modelversions``."""

import sys

from modelversions.cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
