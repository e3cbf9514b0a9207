#!/usr/bin/env bash
# The test command: set up what is missing (scripts/setup.sh), then run the whole pytest suite
# (unit and integration tests). Extra arguments go to pytest, e.g. `scripts/test.sh -m "not integration"`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "${NPE_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
