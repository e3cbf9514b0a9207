#!/usr/bin/env bash
# Install the kit's pinned Python stack into a fresh venv, then check it (verify_stack.py).
# One script for every place the stack is built, so that what the tests run is what the image runs:
#   docker/Dockerfile (stage "stack")  the CUDA image and the CPU image
#   scripts/cuda_twin.sh               the CUDA image's stack on Python 3.10 / torch 2.1.2 (CPU), in CI
# Settings (environment variables, all required but PYTHON):
#   PYTHON           the interpreter the venv is made from (default python3; the base image's Python)
#   VENV             the venv to create (must not exist)
#   LOCK             the lock file to install with --require-hashes
#   TORCH            base = torch comes from PYTHON's own site-packages (the venv sees them),
#                    lock = the lock file's torch (found in WHEELHOUSE)
#   TORCH_VERSION    the torch version the stack must end up with
#   MMCV_VERSION     the mmcv version (installed --no-deps from a prebuilt wheel)
#   WHEELHOUSE       a folder of wheels PyPI does not serve (CPU torch, compiled mmcv); may be empty
#   MMCV_FIND_LINKS  where the prebuilt mmcv wheel is found (OpenMMLab's index or a folder)
set -euo pipefail
PYTHON="${PYTHON:-python3}"
for name in VENV LOCK TORCH TORCH_VERSION MMCV_VERSION WHEELHOUSE MMCV_FIND_LINKS; do
  [[ -n "${!name:-}" ]] || { echo "install_stack: error: $name is not set" >&2; exit 2; }
done
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "$TORCH" in
  base) venv_flags=(--system-site-packages) ;;
  lock) venv_flags=() ;;
  *) echo "install_stack: error: TORCH=$TORCH (expected base or lock)" >&2; exit 2 ;;
esac
"$PYTHON" -m venv "${venv_flags[@]}" "$VENV"
# The lock resolved together: every pin with its hash, and pip's resolver over their dependencies.
"$VENV/bin/python" -m pip install --require-hashes --find-links "$WHEELHOUSE" -r "$LOCK"
"$VENV/bin/python" -m pip install --no-deps --only-binary mmcv --find-links "$WHEELHOUSE" \
  --find-links "$MMCV_FIND_LINKS" "mmcv==$MMCV_VERSION"
"$VENV/bin/python" "$HERE/verify_stack.py" --torch "$TORCH_VERSION" --mmcv "$MMCV_VERSION"
