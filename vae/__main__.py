"""``python -m vae``: the command-line face of the library."""

import sys

from vae.cli import main

if __name__ == "__main__":
    sys.exit(main())
