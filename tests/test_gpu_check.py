"""scripts/gpu_check.sh ("does the kit work on this CUDA host?") where torch sees no GPU: one line
saying what to check, exit 2, nothing built or written. Its GPU path runs on a lent GPU machine
(README: what was measured there)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_without_a_gpu_it_stops_with_one_line_before_any_work(tmp_path):
    work = tmp_path / 'work'
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES='')  # no GPU, even on a GPU host
    proc = subprocess.run(['bash', str(ROOT / 'scripts' / 'gpu_check.sh'), '--work', str(work)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith('gpu_check: error: torch ') and 'sees no CUDA GPU' in lines[0]
    assert 'nvidia-smi' in lines[0]
    assert not work.exists()


def test_unknown_arguments_are_one_line():
    proc = subprocess.run(['bash', str(ROOT / 'scripts' / 'gpu_check.sh'), '--bogus'], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == "gpu_check: error: unknown argument '--bogus' (see --help)"
