"""``python -m dialog360_async``: the ``dialog360`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
