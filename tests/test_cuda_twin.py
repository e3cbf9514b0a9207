"""The CUDA image's stack as shipped, tested on this machine's CPU (scripts/cuda_twin.sh).

The image cannot be built here (no registry for its base image, no GPU), so its Python layer is
rebuilt the way docker/Dockerfile builds it: Python 3.10 with torch 2.1.2 in the interpreter's own
site-packages (the base image's layout), docker/requirements-cuda.lock installed by
docker/install_stack.sh (the Dockerfile's own script: a --system-site-packages venv, hashes
required, mmcv --no-deps, verify_stack.py), the kit installed non-editable and checked. Then the
`smoke` recipe runs on it end to end (training, evaluation, result files, tables), its checkpoints
and the host stack's load there, and its numbers agree with the host stack's (torch 2.13) run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from npe.provenance import parse_result_lines

ROOT = Path(__file__).resolve().parents[1]
SMOKE_FILES = {'baseline__seed0__s1.json', 'counted_la__seed0__s1.json', 'counted_la__seed0__s2.json',
               'npe1__seed0__s1.json', 'npe1__seed0__s2.json', 'npe_main_only__seed0__sinf.json',
               'npe_counted_la__seed0__s1.json', 'npe_counted_la__seed0__s2.json'}
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]


def _clean_env() -> dict:
    # nothing of the host venv leaks into the twin's processes
    env = {k: v for k, v in os.environ.items() if not k.startswith(('NPE_', 'PYTHON', 'VIRTUAL_ENV'))}
    env['PATH'] = os.pathsep.join(p for p in env.get('PATH', '').split(os.pathsep)
                                  if Path(p) != Path(sys.executable).parent)
    return env


@pytest.fixture(scope='module')
def twin(tmp_path_factory) -> dict:
    """scripts/cuda_twin.sh --run: the twin stack built afresh, then `smoke` and its tables in it."""
    from stack_python import python310

    run = tmp_path_factory.mktemp('twin')
    env = dict(_clean_env(), NPE_PYTHON310=python310())
    proc = subprocess.run(['bash', str(ROOT / 'scripts' / 'cuda_twin.sh'), '--run', str(run)], cwd=run,
                          env=env, capture_output=True, text=True, timeout=3300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    venv = Path(next(line.split('stack ready: ', 1)[1] for line in out.splitlines() if 'stack ready: ' in line))
    return {'run': run, 'venv': venv, 'proc': proc, 'out': out}


def test_the_image_stack_is_verified(twin):
    out = twin['out']
    assert 'verify_stack: torch 2.1.2' in out and 'mmcv 2.1.0 with ops' in out, out[-3000:]
    assert 'mmengine 0.10.7, mmseg 1.2.2: ok' in out
    assert 'recipes: ok' in out  # verify_stack.py --kit: the non-editable install finds its recipes
    version = subprocess.run([str(twin['venv'] / 'bin' / 'python'), '-c',
                              'import sys, torch, numpy, npe; print(sys.version_info[:2], torch.__version__, '
                              'numpy.__version__, npe.__file__)'],
                             cwd=twin['run'], env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith('(3, 10) 2.1.2'), version.stdout
    assert int(version.stdout.split()[3].split('.')[0]) < 2, 'numpy 1.x, as torch 2.1 was built for'
    assert str(twin['venv']) in version.stdout and str(ROOT) not in version.stdout, 'non-editable install'


def test_smoke_recipe_runs_on_the_image_stack(twin):
    results = twin['run'] / 'results' / 'smoke'
    files = {p.name: json.loads(p.read_text()) for p in results.glob('*.json')}
    assert set(files) == SMOKE_FILES
    for name, data in files.items():
        assert data['status'] == 'ok', (name, data.get('error'))
        assert data['environment']['torch'].startswith('2.1.2') and data['environment']['python'].startswith('3.10')
        assert data['training_device'] == 'cpu' and data['environment']['gpu_count'] == 0
        assert 0 <= data['metrics']['mIoU'] <= 100
    lines = parse_result_lines(twin['proc'].stdout)
    assert len(lines) == len(files) and all(r['status'] == 'ok' for r in lines)
    tables = twin['run'] / 'results' / 'tables'
    assert {'smoke.md', 'smoke.tex', 'smoke.csv'} <= {p.name for p in tables.iterdir()}


def _checkpoints(run: Path) -> list[Path]:
    found = sorted(run.glob('work_dirs/**/iter_*.pth'))
    assert found, f'no checkpoint under {run}'
    return found


def test_the_image_torch_loads_checkpoints_of_both_stacks(twin, local_smoke):
    """torch 2.1.2 has no add_safe_globals: the kit's loader must still read MMEngine checkpoints,
    its own and those written by the host's torch 2.13."""
    paths = [_checkpoints(twin['run'])[-1], _checkpoints(local_smoke)[-1]]
    code = ('import sys; from npe.checkpoint import can_restrict_loads, load_checkpoint\n'
            'for p in sys.argv[1:]:\n'
            '    c = load_checkpoint(p); print(can_restrict_loads(), len(c["state_dict"]), *sorted(c))')
    proc = subprocess.run([str(twin['venv'] / 'bin' / 'python'), '-c', code, *map(str, paths)],
                          cwd=twin['run'], env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        restricted, tensors, *keys = line.split()
        assert restricted == 'False', 'torch 2.1.2 has no add_safe_globals'
        assert int(tensors) > 10 and {'message_hub', 'meta', 'optimizer', 'state_dict'} <= set(keys), line


def test_the_image_stack_gives_the_host_stack_numbers(twin, local_smoke):
    """Same recipe, seed and data on torch 2.1.2 and 2.13: the same runs, and numbers that agree
    within the drift float arithmetic allows across builds (per-run mIoU within 1.0)."""
    twin_files = {p.name: json.loads(p.read_text()) for p in (twin['run'] / 'results' / 'smoke').glob('*.json')}
    host_files = {p.name: json.loads(p.read_text()) for p in (local_smoke / 'results' / 'smoke').glob('*.json')}
    assert set(twin_files) == set(host_files) == SMOKE_FILES
    for name in sorted(SMOKE_FILES):
        a, b = twin_files[name]['metrics']['mIoU'], host_files[name]['metrics']['mIoU']
        assert abs(a - b) <= 1.0, (name, a, b)
        la, lb = twin_files[name]['log']['loss'], host_files[name]['log']['loss']
        assert len(la) == len(lb) and la and abs(la[0][1] - lb[0][1]) <= 1e-3 * abs(lb[0][1]), (name, la[:2], lb[:2])
