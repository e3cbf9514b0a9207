"""The CUDA image's Python (3.10) on this machine, for the tests of its stack (lock, twin)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _is_310(python: str) -> bool:
    proc = subprocess.run([python, '-c', 'import sys; print(sys.version_info[:2] == (3, 10))'],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() == 'True'


def python310() -> str:
    """A CPython 3.10: ``NPE_PYTHON310``, else ``python3.10`` on PATH, else pyenv's newest 3.10.x
    (the order of scripts/cuda_twin.sh). A machine without one fails the test (never skips): the
    CUDA image's stack cannot be tested without its Python."""
    pyenv = os.environ.get('PYENV_ROOT') or str(Path.home() / '.pyenv')
    candidates = [os.environ.get('NPE_PYTHON310'), shutil.which('python3.10'),
                  *sorted(map(str, Path(pyenv).glob('versions/3.10.*/bin/python3.10')), reverse=True)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and _is_310(candidate):
            return candidate
    pytest.fail('no Python 3.10 here (the CUDA image\'s Python): set NPE_PYTHON310 or install one, '
                'e.g. `pyenv install 3.10.13`', pytrace=False)


def pypi_only_env() -> dict:
    """The environment pip sees in an image build: PyPI alone (none of this machine's local package
    folders or constraints), the CA bundle for TLS-inspecting proxies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK='1',
               PIP_CERT='/etc/ssl/certs/ca-certificates.crt')
    return env
