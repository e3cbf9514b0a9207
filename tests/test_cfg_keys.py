"""Unknown ``--cfg-options`` keys: one warning naming the nearest known key (issue 18)."""
from __future__ import annotations

import pytest
from mmengine.config import Config

from npe.config import merge_cfg_options


@pytest.fixture
def cfg() -> Config:
    return Config(dict(model=dict(decode_head=dict(num_classes=2, loss_decode=dict(type='CE'))),
                       train_cfg=dict(max_iters=40, val_interval=10),
                       train_dataloader=dict(dataset=dict(pipeline=[dict(type='Load')]))))


def test_misspelt_key_is_one_warning_naming_the_nearest_and_still_merged(cfg, capsys):
    merge_cfg_options(cfg, {'model.decode_head.nmu_classes': 3, 'train_cfg.max_iter': 1})
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        'warning: --cfg-options model.decode_head.nmu_classes: the config has no such key; did you mean '
        'model.decode_head.num_classes? (it is added as a new key)',
        'warning: --cfg-options train_cfg.max_iter: the config has no such key; did you mean '
        'train_cfg.max_iters? (it is added as a new key)']
    assert cfg.model.decode_head.nmu_classes == 3 and cfg.train_cfg.max_iters == 40


def test_known_keys_list_indices_and_new_subkeys_of_new_dicts(cfg, capsys):
    merge_cfg_options(cfg, {'train_cfg.max_iters': 2, 'train_dataloader.dataset.pipeline.0.type': 'X',
                            'model.decode_head.loss_decode.type': 'Dice'})
    assert capsys.readouterr().err == ''
    merge_cfg_options(cfg, {'model.decode_head.loss_decode.avg_non_ignore': True})  # new, nothing near
    assert capsys.readouterr().err.splitlines() == [
        'warning: --cfg-options model.decode_head.loss_decode.avg_non_ignore: the config has no such '
        'key; (it is added as a new key)']
    assert cfg.model.decode_head.loss_decode.avg_non_ignore is True
