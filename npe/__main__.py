"""``python -m npe RECIPE``: the same as ``npe-repro``."""
from npe.cli.repro import main

raise SystemExit(main())
