"""The CUDA image's Python (3.10) on this machine, for the tests of its stack (lock, twin)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


def python310() -> str:
    """A CPython 3.10, found as scripts/cuda_twin.sh finds it (``--python``: ``NPE_PYTHON310``, else
    ``python3.10`` on PATH, else pyenv's newest 3.10.x). A machine without one fails the test (never
    skips): the CUDA image's stack cannot be tested without its Python."""
    proc = subprocess.run(['bash', str(ROOT / 'scripts' / 'cuda_twin.sh'), '--python'], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(proc.stderr.strip() or f'scripts/cuda_twin.sh --python: exit {proc.returncode}',
                    pytrace=False)
    return proc.stdout.strip()


def pypi_only_env() -> dict:
    """The environment pip sees in an image build: PyPI alone (none of this machine's local package
    folders or constraints), the CA bundle for TLS-inspecting proxies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK='1',
               PIP_CERT='/etc/ssl/certs/ca-certificates.crt')
    return env
