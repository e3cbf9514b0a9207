"""Two processes preparing one dataset at the same time (two drivers, or a driver and npe-data): one
builds it, the other waits and uses it; nothing is built twice or swapped under a reader."""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from npe import datasets


def _prepare(barrier, root: str, log: str) -> None:
    spec = datasets.get('smoke')
    build = type(spec)._build

    def counted(self, tmp, inputs):   # every build that really runs leaves a line
        with open(log, 'a') as fh:
            fh.write(f'{tmp}\n')
        return build(self, tmp, inputs)

    type(spec)._build = counted
    barrier.wait()
    folder = spec.prepare(Path(root))
    assert spec.is_prepared(Path(root)) and folder.is_dir()


def test_two_processes_preparing_at_once_build_it_once(tmp_path):
    ctx = mp.get_context('fork')
    barrier = ctx.Barrier(2)
    log = tmp_path / 'builds.txt'
    procs = [ctx.Process(target=_prepare, args=(barrier, str(tmp_path / 'data'), str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(log.read_text().splitlines()) == 1, log.read_text()
    left = sorted(p.name for p in (tmp_path / 'data').iterdir() if '.tmp-' in p.name or '.old-' in p.name)
    assert left == []
    assert datasets.get('smoke').is_prepared(tmp_path / 'data')
