"""The library's messages are :mod:`logging` records (issue 17 item 5): a notebook that configures
nothing sees nothing, ``caplog`` captures them, the commands show them as before."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from npe.logs import NOTE, held_messages, showing_messages

log = logging.getLogger('npe.test_logging')


def test_commands_show_warnings_notes_and_progress_as_one_line_each(capsys):
    with showing_messages():
        log.info('progress %d', 1)
        log.warning('a departure')
        log.warning('retrying', extra=NOTE)
        log.error('[1/1] FAILED')
    assert capsys.readouterr() == ('progress 1\n', 'warning: a departure\nnote: retrying\n[1/1] FAILED\n')
    log.warning('after the command')   # nothing left behind: the NullHandler only
    assert capsys.readouterr() == ('', '')


def test_held_messages_come_after_the_block_or_never(caplog):
    caplog.set_level(logging.INFO)
    with held_messages():
        log.warning('first')
        assert caplog.records == []   # held while the block runs
    assert [r.getMessage() for r in caplog.records] == ['first']
    caplog.clear()
    with pytest.raises(ValueError), held_messages():
        log.warning('about a config refused below')
        raise ValueError('refused')
    with held_messages() as held:
        log.warning('quiet')
        held.drop = True
    assert caplog.records == []


@pytest.mark.integration
def test_train_and_evaluate_print_nothing_and_log_their_messages(tmp_path, capsys, caplog):
    """The notebook case: no logging configured, ``npe.train`` and ``npe.evaluate`` in-process."""
    import npe
    from npe import datasets

    datasets.get('smoke').prepare(tmp_path / 'data')
    capsys.readouterr()
    caplog.set_level(logging.DEBUG, logger='npe')
    run = npe.train('npe::smoke_unet.py', num_pem=1, seed=0, work_dir=tmp_path / 'run',
                    data_root=tmp_path / 'data',
                    cfg_options={'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                                 'default_hooks.checkpoint.interval': 2, 'npe_test_extra_key': 1})
    assert capsys.readouterr() == ('', '')
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith('--cfg-options npe_test_extra_key: the config has no such key') for m in warned)
    assert any(m.startswith('protocol upstream') for m in warned), warned
    log_file = next(Path(run['log_dir']).glob('*.log'))
    assert 'Iter(train)' in log_file.read_text()   # MMEngine's log: in the run's file only

    caplog.clear()
    (Path(run['work_dir']) / 'last_checkpoint').unlink()   # evaluate says which checkpoint it took
    rows = npe.evaluate(run['work_dir'], scale_factors=[1.0], data_root=tmp_path / 'data')
    assert capsys.readouterr() == ('', '')
    notes = [r.getMessage() for r in caplog.records if r.name == 'npe.evaluation']
    assert notes == rows[0]['notes'] and any('iter_2.pth' in n for n in notes), notes
    assert 'System environment' in Path(rows[0]['log_file']).read_text()   # MMEngine's: in npe-test.log


_CHILD = '''
import logging, sys, time
from npe.logs import recording_for_relay
progress = logging.getLogger('npe.progress')
with recording_for_relay(sys.argv[1]):
    progress.debug('  live %d', 1, extra=dict(npe_progress=dict(iteration=1, total=2, final=False)))
    progress.info('  iteration %d/2 (50%%)', 1, extra=dict(npe_progress=dict(iteration=1, total=2, final=False)))
    time.sleep(float(sys.argv[2]))
    logging.getLogger('npe.hooks').info('resuming from iteration 1 of 2')
    logging.getLogger('npe.other').info('not relayed')
'''


def test_a_launched_process_progress_is_relayed_as_it_comes(tmp_path, caplog):
    """``npe-repro --gpus``: rank 0's progress records (live DEBUG ones too, with their
    ``npe_progress``) are logged again in the driver while the process still runs."""
    import subprocess
    import sys
    import time

    from npe.logs import relaying

    caplog.set_level(logging.DEBUG)
    path = tmp_path / 'progress.jsonl'
    path.write_text('{"stale": true}\n')   # a killed run's file is not read
    with relaying(path, every=0.05):
        child = subprocess.Popen([sys.executable, '-c', _CHILD, str(path), '3'])
        deadline = time.monotonic() + 60
        while len(caplog.records) < 2 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert child.poll() is None   # shown while the process runs, not after it
        assert child.wait(60) == 0
    got = [(r.name, r.levelno, r.getMessage(), getattr(r, 'npe_progress', None)) for r in caplog.records]
    assert got == [('npe.progress', logging.DEBUG, '  live 1', dict(iteration=1, total=2, final=False)),
                   ('npe.progress', logging.INFO, '  iteration 1/2 (50%)', dict(iteration=1, total=2, final=False)),
                   ('npe.hooks', logging.INFO, 'resuming from iteration 1 of 2', None)]
