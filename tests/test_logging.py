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
