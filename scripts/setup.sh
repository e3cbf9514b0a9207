#!/usr/bin/env bash
# Build .venv with the pinned CPU stack (see ../shared/spec/ENVIRONMENT.md).
# Idempotent: a second call returns in seconds once the stamp matches.
# The compiled mmcv wheel is cached in .cache/wheels (git-ignored) and in
# ${XDG_CACHE_HOME:-~/.cache}/npe-kit/wheels so fresh clones on this machine skip the build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${NPE_VENV:-$ROOT/.venv}"
LOCAL_WHEELS="$ROOT/.cache/wheels"
USER_WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/npe-kit/wheels"
TORCH_VERSION="2.13.0"
MMCV_VERSION="2.1.0"

stamp_value() { cat "$ROOT/scripts/setup.sh" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16; }
STAMP="$VENV/.npe-setup-stamp"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_value)" ]] && "$VENV/bin/python" -c "import mmcv.ops, mmseg, npe" 2>/dev/null; then
  echo "setup: $VENV is up to date"
  exit 0
fi

echo "setup: building $VENV"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# pip -q, minus the machine's notes about local index folders that do not exist (noise, not errors).
pip_quiet() { "${PIP[@]}" "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }; }
pip_quiet install -q "torch==$TORCH_VERSION" "setuptools>=77,<81" wheel ninja numpy

mkdir -p "$LOCAL_WHEELS" "$USER_WHEELS"
find_mmcv() { ls "$1"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true; }
WHEEL="$(find_mmcv "$LOCAL_WHEELS")"
if [[ -z "$WHEEL" && -n "$(find_mmcv "$USER_WHEELS")" ]]; then
  cp "$(find_mmcv "$USER_WHEELS")" "$LOCAL_WHEELS/"
  WHEEL="$(find_mmcv "$LOCAL_WHEELS")"
fi
if [[ -z "$WHEEL" ]]; then
  echo "setup: compiling mmcv $MMCV_VERSION with ops for CPU (about 7 minutes, once per machine)"
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
    pip_quiet wheel -q --no-build-isolation --no-deps "mmcv==$MMCV_VERSION" -w "$LOCAL_WHEELS"
  WHEEL="$(find_mmcv "$LOCAL_WHEELS")"
  cp "$WHEEL" "$USER_WHEELS/"
fi
pip_quiet install -q "$WHEEL"
pip_quiet install -q -e "$ROOT[test]"
"$VENV/bin/python" -c "import mmcv.ops, mmseg.models, npe" 
stamp_value > "$STAMP"
echo "setup: done ($VENV)"
