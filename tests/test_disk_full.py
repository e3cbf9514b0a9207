"""A full disk (issue 18): one ``error:`` line, no half-written file kept, and the same command,
once there is room, gives the complete output. The disk is a real tmpfs of 64 KiB (CI runs as root
on a machine that allows the mount); where the mount is refused, a real file-size limit
(RLIMIT_FSIZE, errno EFBIG) makes the same fault in the child process alone."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_tables import SEEDS, dump, make_result, write_recipe

BIN = Path(sys.executable).parent


@pytest.fixture
def small_disk(tmp_path):
    """``(folder, grow, limit)``: a 64 KiB tmpfs, a function giving it room, and the preexec_fn
    of the child (None on a tmpfs; the file-size limit where mounting is refused)."""
    folder = tmp_path / 'small'
    folder.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', str(folder)],
                             capture_output=True).returncode == 0
    state = {'limit': None if mounted else 64 * 1024}

    def grow() -> None:
        if mounted:
            subprocess.run(['mount', '-o', 'remount,size=32m', str(folder)], check=True)
        state['limit'] = None

    def limit():
        if state['limit'] is None:
            return None

        def apply() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of a killed process
            resource.setrlimit(resource.RLIMIT_FSIZE, (state['limit'], state['limit']))
        return apply
    yield folder, grow, limit
    if mounted:
        subprocess.run(['umount', str(folder)], check=True)


def test_full_disk_is_one_line_nothing_half_written_and_the_rerun_is_complete(tmp_path, small_disk):
    folder, grow, limit = small_disk
    recipe = write_recipe(tmp_path)
    results = tmp_path / 'results'
    for seed in SEEDS:
        for variant, s in (('baseline', 1), ('npe1', 1), ('npe1', 2)):
            dump(results, recipe, make_result(recipe, variant, seed, s, [50.0 + seed] * 7, 50.0 + seed, 60.0))

    def tables(out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / 'npe-tables'), '--results-dir', str(results), '--recipe',
                               str(recipe.path), '--out-dir', str(out), '-q'], capture_output=True, text=True,
                              preexec_fn=limit(), timeout=600, env=dict(os.environ, PYTHONUNBUFFERED='1'))

    full = tables(folder / 't')
    assert full.returncode == 2, full.stderr[-2000:]
    assert full.stderr.startswith('error: no space left on the device writing ' + str(folder / 't'))
    assert len(full.stderr.splitlines()) == 1 and 'run the same command again' in full.stderr
    assert not [p for p in folder.rglob('*') if p.name.endswith('.tmp')]   # no half-written file
    grow()
    again = tables(folder / 't')
    assert again.returncode == 0, again.stderr[-2000:]
    reference = tables(tmp_path / 'reference')   # the same build where there always was room
    assert reference.returncode == 0
    expected = {p.relative_to(tmp_path / 'reference'): p.read_bytes()
                for p in (tmp_path / 'reference').rglob('*') if p.is_file()}
    got = {p.relative_to(folder / 't'): p.read_bytes() for p in (folder / 't').rglob('*') if p.is_file()}
    assert got.keys() == expected.keys() and got == expected
