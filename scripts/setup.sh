#!/usr/bin/env bash
# Build .venv with the pinned CPU stack (see docs/environment.md): every package from
# docker/requirements-cpu.lock (the same lock as the CPU image; hashes checked) and
# docker/requirements-tools.lock, plus mmcv compiled for this torch, plus this package (editable).
# Idempotent: a second call returns in seconds once the stamp matches.
# The CPU torch wheel and the compiled mmcv wheel are kept in .cache/wheels (git-ignored; the Docker
# build takes them from there); the mmcv wheel also in ${XDG_CACHE_HOME:-~/.cache}/npe-kit/wheels so
# fresh clones on this machine skip the build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${NPE_VENV:-$ROOT/.venv}"
LOCAL_WHEELS="$ROOT/.cache/wheels"
USER_WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/npe-kit/wheels"
TORCH_VERSION="2.13.0"
MMCV_VERSION="2.1.0"

stamp_value() { cat "$ROOT/scripts/setup.sh" "$ROOT/pyproject.toml" "$ROOT"/docker/requirements-{cpu,tools}.lock | sha256sum | cut -c1-16; }
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
mkdir -p "$LOCAL_WHEELS" "$USER_WHEELS"
# The CPU torch wheel: from pip's own sources (this machine kind keeps it locally), else PyTorch's
# CPU index. The lock's hash decides whether it is the right file.
if ! ls "$LOCAL_WHEELS"/torch-"$TORCH_VERSION"+cpu-*.whl >/dev/null 2>&1; then
  pip_quiet download -q --no-deps "torch==$TORCH_VERSION+cpu" -d "$LOCAL_WHEELS" >/dev/null \
    || pip_quiet download -q --no-deps "torch==$TORCH_VERSION+cpu" -d "$LOCAL_WHEELS" \
         --index-url https://download.pytorch.org/whl/cpu
fi
pip_quiet install -q --require-hashes --find-links "$LOCAL_WHEELS" \
  -r "$ROOT/docker/requirements-cpu.lock" -r "$ROOT/docker/requirements-tools.lock"

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
pip_quiet install -q --no-deps "$WHEEL"
pip_quiet install -q --no-deps --no-build-isolation -e "$ROOT"
"${PIP[@]}" check
"$VENV/bin/python" -c "import mmcv.ops, mmseg.models, npe"
stamp_value > "$STAMP"
echo "setup: done ($VENV)"
