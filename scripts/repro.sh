#!/usr/bin/env bash
# The main job. Sets up what is missing (scripts/setup.sh), then runs `npe-repro` on a recipe.
# With no argument it runs the built-in `longtail_synth` recipe on CPU (no GPU, no network needed);
# in a clone its committed results count as finished runs, so it prints the summary and generates no data.
# Any arguments go to npe-repro, e.g. `scripts/repro.sh stare_unet --dry-run`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" >&2
cd "$ROOT"
if [[ $# -eq 0 ]]; then
  set -- longtail_synth
fi
exec "${NPE_VENV:-$ROOT/.venv}/bin/npe-repro" "$@"
