"""``npe-test CONFIG CHECKPOINT --counted-la --scale-factor 1 2 auto`` on a baseline trained by
``npe-train --num-pem 0``: the counted-LA rows, with the driver's numbers for that model, and
``--show-dir`` overlays of the chosen s, and the same rows for the same weights as a plain MMSeg
model (issue 19)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import expect_one_line_error

from npe.cli.test import main


@pytest.mark.integration
def test_config_checkpoint_counted_la_and_auto_match_the_driver(tmp_path, script):
    from npe import datasets
    from npe.auto_scale import DEFAULT_CANDIDATES
    from npe.evaluation import evaluate, find_run_config
    from npe.jobs import choose_scales
    from npe.own_data import counted_prior
    from npe.recipe_inputs import counted_log_prior
    from npe.recipe_schema import AutoScaleFile
    from npe.recipes import load_recipe

    datasets.get('smoke').prepare(tmp_path / 'data')
    run = tmp_path / 'run'
    proc = script('npe-train', 'npe::smoke_unet.py', '--num-pem', '0', '--work-dir', str(run),
                  '--data-root', str(tmp_path / 'data'), '--cfg-options', 'train_cfg.max_iters=4',
                  'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=4', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config, checkpoint = find_run_config(run), run / 'iter_4.pth'
    busy = tmp_path / 'busy'   # a work dir that already holds things
    busy.mkdir()
    (busy / 'other.py').write_text('x = 1\n')
    out = tmp_path / 'metrics.json'
    proc = script('npe-test', str(config), str(checkpoint), '--counted-la', '--scale-factor', '1', '2', 'auto',
                  '--work-dir', str(busy), '--out', str(out), '--show-dir', str(tmp_path / 'show'), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'counted LA rows' in proc.stdout and 'auto -> s = ' in proc.stdout
    # MMSeg's overlays of the chosen s: one image per validation image (8 in smoke)
    assert len(list((tmp_path / 'show' / 'vis_data' / 'vis_image').glob('*.png'))) == 8, proc.stdout
    got = json.loads(out.read_text())['results']
    assert [r['adjustment'] for r in got] == ['counted'] * 3
    assert got[2]['auto']['split'] == 'holdout'

    # The driver's path for that model: its counted prior, its held-out choice, its evaluation.
    recipe = dataclasses.replace(load_recipe('smoke'), auto_scale=AutoScaleFile(
        metric='mIoU', candidates=tuple(DEFAULT_CANDIDATES)))
    _, log_prior = counted_log_prior(recipe, tmp_path / 'data')
    assert counted_prior(config)[1] == log_prior   # the config's training split, counted through MMSeg
    chosen = choose_scales(recipe, run, str(checkpoint), log_prior, ['counted'])['counted']
    rows = evaluate(run, checkpoint=checkpoint, log_prior=log_prior,
                    adjustments=[('counted', 1.0), ('counted', 2.0), ('counted', chosen[0])])
    assert got[2]['scale_factor'] == chosen[0] and got[2]['auto']['candidates'] == chosen[1]['candidates']
    for mine, driver in zip(got, rows):
        assert mine['metrics'] == driver['metrics']
        assert mine['per_class'] == driver['per_class']
    # A plain MMSeg model (config without NPE head, checkpoint with MMSeg's keys): the same weights
    # give the same counted-LA rows.
    import torch
    from mmengine.config import Config

    from npe.config import resolve_config_path

    plain_cfg = Config.fromfile(str(resolve_config_path('npe::smoke_unet.py')))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        plain_cfg[loader].dataset.data_root = str(datasets.get('smoke').path(tmp_path / 'data'))
    plain_cfg.dump(str(tmp_path / 'plain_unet.py'))
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']
    torch.save({'state_dict': {k.replace('decode_head.main_head.', 'decode_head.'): v for k, v in state.items()}},
               tmp_path / 'plain.pth')
    plain_out = tmp_path / 'plain.json'
    proc = script('npe-test', str(tmp_path / 'plain_unet.py'), str(tmp_path / 'plain.pth'), '--counted-la',
                  '--scale-factor', '1', '2', '--out', str(plain_out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'is a plain MMSeg config' in proc.stdout and 'decode_head loaded as decode_head.main_head' in proc.stdout
    plain = json.loads(plain_out.read_text())['results']
    assert [r['metrics'] for r in plain] == [got[0]['metrics'], got[1]['metrics']]
    # and the library call takes 'auto' too, with the same numbers
    lib = evaluate(None, config=config, checkpoint=checkpoint, log_prior=log_prior,
                   scale_factors=[1.0, 'auto'], out_dir=tmp_path / 'lib')
    assert [r['metrics'] for r in lib] == [got[0]['metrics'], got[2]['metrics']]


@pytest.mark.parametrize('argv, expected', [
    (['a.py'], 'a.py is a config: give its checkpoint too'),
    (['run_dir', 'x.pth'], 'expected WORK_DIR or CONFIG.py CHECKPOINT, got run_dir x.pth'),
    (['a.py', 'x.pth', '--checkpoint', 'y.pth'], 'CONFIG CHECKPOINT already name them'),
    (['run_dir', '--work-dir', 'w'], '--work-dir goes with CONFIG CHECKPOINT'),
    (['run_dir', '--scale-factor', 'best'], "expected a number > 0, inf or auto, got 'best'"),
    (['run_dir', '--scale-factor', '1', '2', '--show-dir', 'd'], '--show-dir draws one s'),
])
def test_bad_forms_are_one_line(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = expect_one_line_error(main, argv, capsys)
    assert expected in line, line


def test_auto_without_a_held_out_split_is_one_line(tmp_path, stare_root, monkeypatch, capsys):
    """STARE has no held-out split: 'auto' says so (never falls back to the validation set)."""
    import torch

    from npe.training import RUN_FILE, build_train_config

    run = tmp_path / 'run'
    cfg = build_train_config('mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py', dataset_folder=stare_root,
                             work_dir=run)
    run.mkdir()
    cfg.dump(str(run / 'unet.py'))
    (run / RUN_FILE).write_text(json.dumps({'config': 'unet.py'}))
    torch.save({'state_dict': {}}, run / 'iter_2.pth')
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    line = expect_one_line_error(main, [str(run), '--scale-factor', '1', 'auto'], capsys)
    assert "'auto' chooses s on the held-out training split, which this data lacks" in line
    assert 'images/holdout does not exist' in line
