#!/usr/bin/env bash
# A twin of the CUDA image's Python stack on this machine (no GPU, no image registry needed), so the
# stack users run is the stack CI tests. What it shares with docker/Dockerfile's CUDA build:
#   - Python 3.10 with torch 2.1.2 in the interpreter's own site-packages, as in the base image
#     pytorch/pytorch:2.1.2-cuda12.1-cudnn8-runtime (here: a copy of a local CPython 3.10 prefix with
#     PyPI's torch 2.1.2, the CUDA build with its CUDA libraries, which also runs on a CPU);
#   - the stack installed by the same script, docker/install_stack.sh: a venv over that torch
#     (--system-site-packages), docker/requirements-cuda.lock with --require-hashes, mmcv 2.1.0
#     --no-deps from a prebuilt wheel, then docker/verify_stack.py;
#   - the kit installed non-editable from the same files the image copies, then verify_stack.py --kit.
# What differs: the operating system (this host's instead of Ubuntu 22.04), the mmcv wheel (compiled
# here for torch 2.1.2 with CPU ops, once, cached; it stands in for OpenMMLab's cu121/torch2.1 wheel),
# and pip reads its download cache (the image builds with PIP_NO_CACHE_DIR=1; the files are the same
# and hash-checked either way).
#
#   scripts/cuda_twin.sh [--run DIR]
#   scripts/cuda_twin.sh --python      prints the Python 3.10 it uses (one error line if there is none)
# builds the twin venv afresh (seconds to minutes; the first time also the base and the mmcv wheel,
# about 10 minutes), and with --run DIR runs the `smoke` recipe in it with DIR/{data,results,work_dirs}
# and builds its tables. Python 3.10: NPE_PYTHON310, else python3.10 on PATH, else pyenv's 3.10.x.
# Cache: ${NPE_TWIN_CACHE:-${XDG_CACHE_HOME:-~/.cache}/npe-kit/cuda-twin}.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${NPE_TWIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/npe-kit/cuda-twin}"
TORCH_VERSION="2.1.2"
MMCV_VERSION="2.1.0"
RUN_DIR=""
PRINT_PYTHON=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --run) RUN_DIR="${2:?--run needs a folder}"; shift 2 ;;
    --python) PRINT_PYTHON=1; shift ;;
    -h|--help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cuda_twin: error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
say() { echo "cuda_twin: $*" >&2; }
# pip as the image's build sees it: PyPI alone (no local package folders of this machine), the CA
# bundle for TLS-inspecting proxies
export PIP_CONFIG_FILE=/dev/null PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT PIP_REQUIRE_VIRTUALENV

find_python310() {
  local candidate
  for candidate in "${NPE_PYTHON310:-}" "$(command -v python3.10 || true)" \
      $(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V -r); do
    if [[ -n "$candidate" && -x "$candidate" ]] \
        && [[ "$("$candidate" -c 'import sys; print(sys.version_info[:2] == (3, 10))' 2>/dev/null)" == True ]]; then
      echo "$candidate"
      return 0
    fi
  done
  say "error: no Python 3.10 found (the CUDA image's Python): set NPE_PYTHON310, or install one, e.g. \`pyenv install 3.10.13\`"
  return 2
}
if [[ "$PRINT_PYTHON" == 1 ]]; then
  find_python310
  exit
fi

# --------------------------------------------------------------------------- the base: Python 3.10 + torch
BASE="$CACHE/base-py3.10-torch$TORCH_VERSION"
if ! "$BASE/bin/python3" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  PY310="$(find_python310)"
  PREFIX="$("$PY310" -c 'import sys; print(sys.base_prefix)')"
  say "making the base (Python $("$PY310" -V 2>&1 | cut -d' ' -f2) from $PREFIX, torch $TORCH_VERSION from PyPI; once)"
  mkdir -p "$CACHE"
  rm -rf "$BASE.tmp"
  # a copy of the whole prefix, so torch lands in the interpreter's own site-packages (like the base
  # image's /opt/conda) and a --system-site-packages venv sees it, without touching the original
  cp -a "$PREFIX" "$BASE.tmp"
  "$BASE.tmp/bin/python3" -m pip install -q "torch==$TORCH_VERSION"
  rm -rf "$BASE"
  mv "$BASE.tmp" "$BASE"
fi

# --------------------------------------------------------------------------- the mmcv wheel for that torch
WHEELS="$CACHE/wheels"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/mmcv-"$MMCV_VERSION"-cp310-*.whl >/dev/null 2>&1; then
  say "compiling mmcv $MMCV_VERSION for torch $TORCH_VERSION with CPU ops (about 7 minutes, once)"
  BUILD="$CACHE/mmcv-build"
  rm -rf "$BUILD"
  "$BASE/bin/python3" -m venv --system-site-packages "$BUILD"
  "$BUILD/bin/python" -m pip install -q "setuptools>=77,<81" wheel ninja "numpy<2"
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    "$BUILD/bin/python" -m pip wheel -q --no-build-isolation --no-deps "mmcv==$MMCV_VERSION" -w "$WHEELS"
  rm -rf "$BUILD"
fi

# --------------------------------------------------------------------------- the stack, as the image installs it
VENV="$CACHE/venv"
rm -rf "$VENV"
say "installing docker/requirements-cuda.lock into a venv over torch $TORCH_VERSION (docker/install_stack.sh)"
PYTHON="$BASE/bin/python3" VENV="$VENV" LOCK="$ROOT/docker/requirements-cuda.lock" TORCH=base \
  TORCH_VERSION="$TORCH_VERSION" MMCV_VERSION="$MMCV_VERSION" WHEELHOUSE="$WHEELS" MMCV_FIND_LINKS="$WHEELS" \
  bash "$ROOT/docker/install_stack.sh" 2>&1 | { grep -v '^\(Collecting\|  Downloading\|  Using cached\|     \)' || true; }

# --------------------------------------------------------------------------- the kit, as the image installs it
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
# the files the Dockerfile's kit stage copies
cp "$ROOT"/{pyproject.toml,setup.py,MANIFEST.in,README.md} "$SRC/"
cp -r "$ROOT/recipes" "$ROOT/npe" "$SRC/"
find "$SRC" -name __pycache__ -prune -exec rm -rf {} +
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation --no-cache-dir "$SRC"
# from a folder without the checkout, so `import npe` finds the installed package
(cd "$SRC/.." && "$VENV/bin/python" "$ROOT/docker/verify_stack.py" --kit)
say "stack ready: $VENV"

# --------------------------------------------------------------------------- a recipe on it
if [[ -n "$RUN_DIR" ]]; then
  mkdir -p "$RUN_DIR"
  RUN_DIR="$(cd "$RUN_DIR" && pwd)"
  cd "$RUN_DIR"
  "$VENV/bin/npe-repro" smoke --data-root "$RUN_DIR/data" --results-dir "$RUN_DIR/results" \
    --work-dir "$RUN_DIR/work_dirs"
  "$VENV/bin/npe-tables" --results-dir "$RUN_DIR/results" --recipe smoke
fi
