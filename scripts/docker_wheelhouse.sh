#!/usr/bin/env bash
# Fill docker/wheelhouse/ (git-ignored, part of the build context) with the two wheels the CPU image
# takes from outside PyPI: the CPU torch wheel and the mmcv wheel compiled for it, both kept in
# .cache/wheels by scripts/setup.sh (which this runs first; seconds when .venv is up to date).
# Hard links where possible (the build context follows no symbolic links), else copies.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" >&2
HOUSE="$ROOT/docker/wheelhouse"
find "$HOUSE" -maxdepth 1 -name '*.whl' -delete
for pattern in 'torch-2.13.0+cpu-*.whl' 'mmcv-2.1.0-*.whl'; do
  wheel="$(ls "$ROOT"/.cache/wheels/$pattern 2>/dev/null | head -n1 || true)"
  [[ -n "$wheel" ]] || { echo "error: no $pattern in .cache/wheels (run scripts/setup.sh)" >&2; exit 2; }
  ln "$wheel" "$HOUSE/" 2>/dev/null || cp "$wheel" "$HOUSE/"
done
echo "docker_wheelhouse: $(cd "$HOUSE" && ls ./*.whl | tr '\n' ' ')"
