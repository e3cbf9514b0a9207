"""Unknown ``--cfg-options`` keys: one warning naming the nearest known key (issue 18)."""
from __future__ import annotations

import pytest
from mmengine.config import Config

from npe.config import merge_cfg_options
from npe.logs import showing_messages


@pytest.fixture
def cfg() -> Config:
    return Config(dict(model=dict(decode_head=dict(num_classes=2, loss_decode=dict(type='CE'))),
                       train_cfg=dict(max_iters=40, val_interval=10),
                       train_dataloader=dict(dataset=dict(pipeline=[dict(type='Load')]))))


def test_misspelt_key_is_one_warning_naming_the_nearest_and_still_merged(cfg, capsys):
    with showing_messages():   # the lines the commands show
        merge_cfg_options(cfg, {'model.decode_head.nmu_classes': 3, 'train_cfg.max_iter': 1})
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        'warning: --cfg-options model.decode_head.nmu_classes: the config has no such key; did you mean '
        'model.decode_head.num_classes? (it is added as a new key)',
        'warning: --cfg-options train_cfg.max_iter: the config has no such key; did you mean '
        'train_cfg.max_iters? (it is added as a new key)']
    assert cfg.model.decode_head.nmu_classes == 3 and cfg.train_cfg.max_iters == 40


def test_known_keys_list_indices_and_new_subkeys_of_new_dicts(cfg, capsys):
    with showing_messages():   # the lines the commands show
        merge_cfg_options(cfg, {'train_cfg.max_iters': 2, 'train_dataloader.dataset.pipeline.0.type': 'X',
                                'model.decode_head.loss_decode.type': 'Dice'})
        assert capsys.readouterr().err == ''
        merge_cfg_options(cfg, {'model.decode_head.loss_decode.avg_non_ignore': True})  # new, nothing near
    assert capsys.readouterr().err.splitlines() == [
        'warning: --cfg-options model.decode_head.loss_decode.avg_non_ignore: the config has no such '
        'key; (it is added as a new key)']
    assert cfg.model.decode_head.loss_decode.avg_non_ignore is True


@pytest.mark.integration
def test_misspelt_key_refused_by_its_class_is_one_line_and_leaves_nothing(tmp_path):
    """A real npe-train whose --cfg-options typo reaches a class that refuses it (the training loop):
    the warning naming the nearest key, then one error line, exit 2, no log folder left."""
    import subprocess
    import sys
    from pathlib import Path

    from npe import datasets

    datasets.get('smoke').prepare(tmp_path / 'data')
    proc = subprocess.run([str(Path(sys.executable).parent / 'npe-train'), 'npe::smoke_unet.py', '--data-root',
                           str(tmp_path / 'data'), '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                           'train_cfg.max_iter=1'], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith('warning: --cfg-options')]
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert len(warnings) == 1 and 'did you mean train_cfg.max_iters?' in warnings[0]
    assert len(errors) == 1 and errors[0].startswith('error: --cfg-options train_cfg.max_iter: '), errors
    assert not (tmp_path / 'w').exists()
