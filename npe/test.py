"""``python -m npe.test`` = ``npe-test`` (see :mod:`npe.cli.test`)."""
import sys

from npe.cli.test import main

if __name__ == '__main__':
    sys.exit(main())
