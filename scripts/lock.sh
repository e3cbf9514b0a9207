#!/usr/bin/env bash
# Regenerate the lock files with uv (never edit them by hand): `scripts/lock.sh [cpu] [cuda] [tools]`
# (default: all three). Each regenerated lock takes today's newest versions that fit, so regenerate
# only the ones whose inputs changed.
#   docker/requirements-cpu.lock    pyproject.toml [test] for Python 3.11: the host venv (scripts/setup.sh)
#                                   and the CPU image; torch is the 2.13.0 CPU build
#   docker/requirements-cuda.lock   pyproject.toml for Python 3.10: the CUDA image (torch from its base)
#   docker/requirements-tools.lock  docker/requirements-tools.in: host-only tools (mmcv build, linters)
# Each is resolved against PyPI alone (uv reads no pip configuration), plus, for the CPU lock, a folder
# holding only the CPU torch wheel. Inputs: pyproject.toml, docker/lock-overrides-*.txt (packages left
# out) and docker/lock-constraints-cuda.txt (bounds that must agree with every package's requirements).
# tests/test_packaging.py installs the CUDA lock with its dependencies on Python 3.10 to prove it resolves.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
UV_VERSION="0.13.9"
TORCH_CPU="torch==2.13.0+cpu"
TOOLS="$ROOT/.cache/lock-tools"
PYTHON="${PYTHON:-python3}"

if [[ "$("$TOOLS/bin/uv" --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION" 2>&1 \
    | { grep -v "^WARNING: Location 'file:" || true; }
fi
UV="$TOOLS/bin/uv"

# The CPU torch wheel: from pip's own sources first (this machine kind has it locally), else
# PyTorch's CPU index.
TORCH_DIR="$ROOT/.cache/lock-torch"
mkdir -p "$TORCH_DIR"
if ! ls "$TORCH_DIR"/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps "$TORCH_CPU" -d "$TORCH_DIR" 2>/dev/null \
    || "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps "$TORCH_CPU" -d "$TORCH_DIR" \
         --index-url https://download.pytorch.org/whl/cpu
fi

export UV_NO_CONFIG=1 UV_NO_CACHE=1
export SSL_CERT_FILE="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL UV_INDEX_URL UV_EXTRA_INDEX_URL UV_FIND_LINKS
COMMON=(--quiet --generate-hashes --index-url https://pypi.org/simple --custom-compile-command scripts/lock.sh)

LOCKS=("$@")
[[ ${#LOCKS[@]} -gt 0 ]] || LOCKS=(cpu cuda tools)
for lock in "${LOCKS[@]}"; do
  case "$lock" in
    cpu)
      "$UV" pip compile pyproject.toml --extra test --override docker/lock-overrides-cpu.txt \
        --python-version 3.11 --python-platform x86_64-manylinux_2_28 --find-links "$TORCH_DIR" \
        "${COMMON[@]}" -o docker/requirements-cpu.lock ;;
    cuda)
      "$UV" pip compile pyproject.toml --override docker/lock-overrides-cuda.txt \
        --constraint docker/lock-constraints-cuda.txt \
        --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
        "${COMMON[@]}" -o docker/requirements-cuda.lock ;;
    tools)
      "$UV" pip compile docker/requirements-tools.in \
        --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
        "${COMMON[@]}" -o docker/requirements-tools.lock ;;
    *) echo "error: unknown lock '$lock' (expected cpu, cuda or tools)" >&2; exit 2 ;;
  esac
  echo "lock: wrote docker/requirements-$lock.lock"
done
# uv names the folder it found the CPU torch wheel in; keep the files free of machine paths
sed -i "s#$TORCH_DIR#<CPU torch wheel>#g" docker/requirements-cpu.lock
