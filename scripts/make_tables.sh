#!/usr/bin/env bash
# Rebuild every table and figure in results/tables/ from the result files: npe-tables "$@".
# On the host it sets up .venv first; in the kit's image (NPE_IN_IMAGE=1) the stack is installed
# already: `docker compose run --rm repro tables` runs this script there.
set -euo pipefail
if [[ "${NPE_IN_IMAGE:-0}" == 1 ]]; then
  exec npe-tables "$@"
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NPE_VENV:-$ROOT/.venv}"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
# quiet unless setup fails, then show why
if ! "$ROOT/scripts/setup.sh" >"$LOG" 2>&1; then
  cat "$LOG" >&2
  echo "make_tables: scripts/setup.sh failed" >&2
  exit 1
fi
rm -f "$LOG"
trap - EXIT
exec "$VENV/bin/npe-tables" "$@"
