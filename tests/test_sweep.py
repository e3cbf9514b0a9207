"""One-pass scale-factor sweeps (npe.sweep): the confusion counts of every (adjustment, s) equal
those of one full evaluation per s, exactly, for whole-image, sliding-window and TTA inference, for
NPE-LA, counted LA and no adjustment. Real MMEngine runs on the generated `smoke` set."""
from __future__ import annotations

import math

import numpy as np
import pytest

import npe
from npe.errors import ConfigError

LOG_PRIOR = [math.log(0.6), math.log(0.3), math.log(0.1)]
BLOCKS = [('npe', 0.5), ('npe', 1.0), ('npe', 3.0), ('none', 1.0), ('npe', math.inf),
          ('counted', 1.0), ('counted', 2.0)]
SLIDE = {'model.test_cfg': dict(mode='slide', crop_size=(40, 40), stride=(24, 24))}
TTA = {'tta_model': dict(type='SegTTAModel'),
       'tta_pipeline': [dict(type='LoadImageFromFile', backend_args=None),
                        dict(type='TestTimeAug', transforms=[
                            [dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                             dict(type='RandomFlip', prob=1.0, direction='horizontal')],
                            [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]])]}


@pytest.fixture(scope='module')
def smoke_run(smoke_npe_run):
    return smoke_npe_run


def _compare(work_dir, tmp_path, **kwargs):
    one = npe.evaluate(work_dir, adjustments=BLOCKS, log_prior=LOG_PRIOR, record_prior=True,
                       out_dir=tmp_path / 'one', **kwargs)
    per = npe.evaluate(work_dir, adjustments=BLOCKS, log_prior=LOG_PRIOR, record_prior=True,
                       out_dir=tmp_path / 'per', per_s=True, **kwargs)
    assert [r['one_pass'] for r in one] == [True] * len(BLOCKS)
    assert [r['one_pass'] for r in per] == [False] * len(BLOCKS)
    for a, b in zip(one, per, strict=True):  # the lengths are BLOCKS' (checked above)
        assert (a['adjustment'], a['scale_factor']) == (b['adjustment'], b['scale_factor'])
        ca, cb = np.array(a['per_class']['confusion']), np.array(b['per_class']['confusion'])
        assert ca.dtype.kind == 'i' and ca.sum() > 0
        assert np.array_equal(ca, cb), (a['adjustment'], a['scale_factor'])
        assert a['metrics'] == b['metrics'] and a['per_class'] == b['per_class']
        assert a['learned_prior'] == pytest.approx(b['learned_prior'], abs=1e-9)
    by = {(r['adjustment'], r['scale_factor']): np.array(r['per_class']['confusion']) for r in one}
    # s = inf and 'none' are the unadjusted head; the adjustments do change predictions here, so
    # the equality above is not the trivial one of identical outputs.
    assert np.array_equal(by[('none', 1.0)], by[('npe', math.inf)])
    assert not np.array_equal(by[('npe', 0.5)], by[('none', 1.0)])
    assert not np.array_equal(by[('counted', 1.0)], by[('none', 1.0)])
    return one


@pytest.mark.integration
def test_one_pass_equals_per_s_whole_image(smoke_run, tmp_path):
    rows = _compare(smoke_run, tmp_path)
    assert len({r['wall_time_s'] for r in rows}) == 1  # one pass served every row


@pytest.mark.integration
def test_one_pass_equals_per_s_sliding_window(smoke_run, tmp_path):
    _compare(smoke_run, tmp_path, cfg_options=SLIDE)


@pytest.mark.integration
def test_one_pass_equals_per_s_tta_slide(smoke_run, tmp_path):
    _compare(smoke_run, tmp_path, cfg_options={**SLIDE, **TTA}, tta=True)


def test_bad_requests_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match='needs log_prior'):
        npe.evaluate(tmp_path, adjustments=[('counted', 1.0)])
    with pytest.raises(ConfigError, match='unknown adjustment'):
        npe.evaluate(tmp_path, adjustments=[('magic', 1.0)])
    with pytest.raises(ConfigError, match='> 0'):
        npe.evaluate(tmp_path, scale_factors=[0])


@pytest.mark.integration
def test_tta_evaluates_the_trained_weights(smoke_run, tmp_path):
    """TTA with one unflipped view gives the plain evaluation's counts. (MMEngine's own non-strict
    loading put no weight into the TTA wrapper, whose keys carry a `module.` prefix: before the kit
    loaded checkpoints itself, --tta evaluated a freshly initialised model.)"""
    one_view = {'tta_model': TTA['tta_model'],
                'tta_pipeline': [TTA['tta_pipeline'][0],
                                 dict(type='TestTimeAug', transforms=[
                                     [dict(type='RandomFlip', prob=0.0, direction='horizontal')],
                                     [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]])]}
    plain = npe.evaluate(smoke_run, scale_factors=[1, 2], out_dir=tmp_path / 'plain')
    tta = npe.evaluate(smoke_run, scale_factors=[1, 2], out_dir=tmp_path / 'tta', tta=True, cfg_options=one_view)
    assert len(plain) == len(tta) == 2, 'one row per s from each path'
    for a, b in zip(plain, tta, strict=True):
        assert a['per_class']['confusion'] == b['per_class']['confusion']
