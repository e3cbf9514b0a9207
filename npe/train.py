"""``python -m npe.train`` = ``npe-train`` (see :mod:`npe.cli.train`)."""
import sys

from npe.cli.train import main

if __name__ == '__main__':
    sys.exit(main())
