"""``npe-test``: which config/checkpoint/s it uses, bad input, and real evaluation of a trained run
at several scale factors without touching the training run's files."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from conftest import expect_one_line_error

from npe.cli.test import main
from npe.evaluation import evaluate, find_run_config, prepare_test_config
from npe.training import RUN_FILE, build_train_config
from npe.errors import UserError

STARE_UNET = 'mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py'
STEM = 'unet-s5-d16_fcn_4xb4-40k_stare-128x128'


def run_main_expect_error(argv: list[str], capsys) -> str:
    """Run this module's CLI in-process, expecting one ``error:`` line and exit status 2."""
    return expect_one_line_error(main, argv, capsys)


@pytest.fixture
def config_only_run(tmp_path, stare_root, capsys) -> Path:
    """A work dir as npe-train leaves it (dumped NPE config, npe_train.json, checkpoint files),
    without training: for checks that never load the weights."""
    work_dir = tmp_path / 'run'
    cfg = build_train_config(STARE_UNET, dataset_folder=stare_root, work_dir=work_dir, scale_factor=1.5)
    capsys.readouterr()
    work_dir.mkdir()
    cfg.dump(str(work_dir / f'{STEM}.py'))
    (work_dir / RUN_FILE).write_text(json.dumps({'config': f'{STEM}.py'}))
    import torch

    torch.save({'state_dict': {}}, work_dir / 'iter_2.pth')  # readable, never loaded into a model here
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_2.pth'))
    return work_dir


# --------------------------------------------------------------------------- locating the config
def test_config_of_the_run_not_the_first_py(tmp_path):
    work_dir = tmp_path / 'wd'
    work_dir.mkdir()
    (work_dir / 'a_first.py').write_text('x = 1\n')
    (work_dir / 'z_run.py').write_text('x = 2\n')
    with pytest.raises(UserError, match='several configs'):
        find_run_config(work_dir)
    # MMSeg's own tools/train.py layout: the newest run folder's vis_data/config.py.
    for stamp in ('20260101_000000', '20260301_000000'):
        (work_dir / stamp / 'vis_data').mkdir(parents=True)
        (work_dir / stamp / 'vis_data' / 'config.py').write_text(f'stamp = "{stamp}"\n')
    assert find_run_config(work_dir) == work_dir / '20260301_000000' / 'vis_data' / 'config.py'
    # npe-train's record wins.
    (work_dir / RUN_FILE).write_text(json.dumps({'config': 'z_run.py'}))
    assert find_run_config(work_dir) == work_dir / 'z_run.py'


def test_single_py_and_empty_work_dir(tmp_path):
    with pytest.raises(UserError, match='no training config'):
        find_run_config(tmp_path)
    (tmp_path / 'only.py').write_text('x = 1\n')
    assert find_run_config(tmp_path) == tmp_path / 'only.py'


def test_test_config_of_a_run(config_only_run):
    cfg, ckpt = prepare_test_config(config_only_run)
    assert ckpt == (config_only_run / 'iter_2.pth').resolve()
    assert cfg.load_from == str(ckpt) and cfg.resume is False
    assert cfg.test_evaluator.type == 'NPEIoUMetric'
    assert cfg.test_evaluator.iou_metrics == ['mDice', 'mIoU']  # STARE asks for mDice only
    assert cfg.train_dataloader is None and cfg.optim_wrapper is None and cfg.val_cfg is None
    assert 'npe.metrics' in cfg.custom_imports.imports
    assert cfg.model.decode_head.scale_factor == 1.5

    cfg, _ = prepare_test_config(config_only_run, tta=True, data_split='training')
    assert cfg.model.type == 'NPESweepTTAModel'  # SegTTAModel merging each adjustment block apart
    assert cfg.model.module.decode_head.type == 'MultiHeadWrapper'
    assert cfg.test_dataloader.dataset.pipeline[1].type == 'TestTimeAug'
    assert cfg.test_dataloader.dataset.data_prefix == dict(img_path='images/training',
                                                           seg_map_path='annotations/training')


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize('case, expected', [
    ('no_work_dir', 'does not exist; give the --work-dir of a training run'),
    ('no_checkpoint', 'no checkpoint in'),
    ('missing_checkpoint', 'none.pth does not exist'),
    ('scale_zero', 'scale factor must be a number > 0'),
    ('scale_text', "argument --scale-factor: expected a number > 0, inf or auto, got 'two'"),
    ('out_is_dir', 'is a folder'),
    ('no_tta', 'has no tta_model/tta_pipeline'),
    ('plain_mmseg', 'test_dataloader: data folder data/STARE'),   # accepted (issue 19): on to the data
    ('missing_test_data', 'test_dataloader: data folder'),
])
def test_bad_input_is_one_line_exit_2_nothing_written(case, expected, config_only_run, tmp_path, capsys,
                                                      files_snapshot):
    args = [str(config_only_run)]
    if case == 'no_work_dir':
        args = [str(tmp_path / 'missing')]
    elif case == 'no_checkpoint':
        for name in ('iter_2.pth', 'last_checkpoint'):
            (config_only_run / name).unlink()
    elif case == 'missing_checkpoint':
        args += ['--checkpoint', str(tmp_path / 'none.pth')]
    elif case == 'scale_zero':
        args += ['--scale-factor', '1', '0']
    elif case == 'scale_text':
        args += ['--scale-factor', 'two']
    elif case == 'out_is_dir':
        args += ['--out', str(tmp_path)]
    elif case == 'no_tta':
        text = (config_only_run / f'{STEM}.py').read_text()
        (config_only_run / f'{STEM}.py').write_text(text + '\ntta_model = None\n')
        args += ['--tta']
    elif case == 'plain_mmseg':
        from npe.config import load_base_config

        load_base_config(STARE_UNET).dump(str(config_only_run / f'{STEM}.py'))
    elif case == 'missing_test_data':
        args += ['--cfg-options', f'test_dataloader.dataset.data_root={tmp_path / "nodata"}']
    before = files_snapshot(tmp_path)
    line = run_main_expect_error(args, capsys)
    assert expected in line
    assert files_snapshot(tmp_path) == before  # no test_* folder, nothing else


# --------------------------------------------------------------------------- real evaluation
def _training_files(work_dir: Path, snapshot) -> dict[str, str]:
    return {k: v for k, v in snapshot(work_dir).items() if not k.startswith('test_')}


@pytest.mark.integration
def test_two_scale_factors_real_process(trained_run, tmp_path, script, files_snapshot):
    before = _training_files(trained_run, files_snapshot)
    out = tmp_path / 'metrics' / 'x.json'
    proc = script('npe-test', str(trained_run), '--scale-factor', '1', '2', '--out', str(out),
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout[proc.stdout.index('npe-test: '):]
    assert re.search(r'^\s+s\s+aAcc\s+mIoU\s+mAcc\s+mDice$', table, re.M)
    assert re.search(r'^\s+1\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$', table, re.M)
    assert re.search(r'^\s+2\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$', table, re.M)
    # Quiet: nothing from MMEngine on the terminal, not even a logging failure (its console handler,
    # made while the Runner started, once kept a closed log file: "--- Logging error ---" on stderr),
    # and its log complete in the file, the messages after the Runner's start included.
    assert 'Traceback' not in proc.stderr and 'Logging error' not in proc.stderr, proc.stderr[-3000:]
    assert 'mmengine' not in proc.stdout + proc.stderr
    log = Path(re.search(r'MMEngine log in (\S+)', proc.stdout).group(1)).read_text()
    assert 'The prefix is not set in metric class NPEIoUMetric' in log and 'Iter(test)' in log

    report = json.loads(out.read_text())
    assert report['checkpoint'] == str(trained_run / 'iter_4.pth')
    assert report['config'] == str(trained_run / f'{STEM}.py')
    assert report['protocol'] == 'upstream' and report['npe']['num_pem'] == 1
    assert [r['scale_factor'] for r in report['results']] == [1.0, 2.0]
    for result in report['results']:
        metrics = result['metrics']
        for key in ('aAcc', 'mIoU', 'mAcc', 'mDice'):
            assert isinstance(metrics[key], float) and 0 <= metrics[key] <= 100
        per_class = result['per_class']
        assert per_class['classes'] == ['background', 'vessel']
        for key in ('IoU', 'Acc', 'Dice'):
            assert len(per_class[key]) == 2
        # the summary is the mean of the per-class numbers (MMSeg rounds it to 2 decimals)
        assert metrics['mIoU'] == pytest.approx(sum(per_class['IoU']) / 2, abs=0.01)
        prior = result['learned_prior']
        assert len(prior) == 2 and all(math.isfinite(v) for v in prior)
        assert abs(sum(prior)) < 1e-6  # centred over classes
        assert result['num_images'] == 2
    # Testing never modifies the training run: every file it had is byte-identical, and the
    # test's own files are in a new test_<timestamp>/ folder.
    assert _training_files(trained_run, files_snapshot) == before
    new = [p.name for p in trained_run.iterdir() if p.name.startswith('test_')]
    assert len(new) == 1 and (trained_run / new[0] / f'{STEM}.py').is_file()


@pytest.mark.integration
def test_library_evaluate_trained_s_log_prior_and_split(trained_run, tmp_path):
    """evaluate(): default s = the trained 1.5; log_prior is applied with 1/s; the learned prior
    does not depend on s; data_split switches the test images."""
    out_dir = tmp_path / 'eval'
    results = evaluate(trained_run, scale_factors=(None, 1e6), log_prior=[50.0, 0.0],
                       data_split='training', out_dir=out_dir)
    assert (out_dir / f'{STEM}.py').is_file()
    first, second = results
    assert first['scale_factor'] == 1.5 and second['scale_factor'] == 1e6
    assert first['num_images'] == second['num_images'] == 4  # the 4 training images
    assert first['split'] == 'training' and first['log_prior'] == [50.0, 0.0]
    # s = 1.5: background loses 50/1.5 logits, so every pixel is called vessel.
    assert first['per_class']['Acc'] == [0.0, 100.0]
    # s = 1e6: the adjustment is gone and the model calls most pixels background again.
    assert second['per_class']['Acc'][0] > 50
    assert first['learned_prior'] == pytest.approx(second['learned_prior'], abs=1e-6)



def _stale_marker_copy(trained_run: Path, target: Path, marker: str | None) -> Path:
    """A copy of the trained run whose ``last_checkpoint`` is gone (``marker`` None) or names
    ``marker``, and whose older checkpoint iter_2.pth was touched after iter_4.pth."""
    import os
    import shutil

    shutil.copytree(trained_run, target, ignore=shutil.ignore_patterns('test_*'))
    (target / 'last_checkpoint').unlink()
    if marker is not None:
        (target / 'last_checkpoint').write_text(str(target / marker))
    newer = (target / 'iter_4.pth').stat().st_mtime + 60
    os.utime(target / 'iter_2.pth', (newer, newer))
    return target


def test_latest_checkpoint_is_the_highest_iteration_never_the_newest_file(tmp_path):
    import os

    from npe.work_dir import checkpoint_choice_note, latest_checkpoint

    for name, age in (('iter_20.pth', 100), ('iter_10.pth', 0), ('iter_9.pth', 50)):
        (tmp_path / name).write_bytes(b'x')
        os.utime(tmp_path / name, (1e9 - age, 1e9 - age))
    assert latest_checkpoint(tmp_path) == tmp_path / 'iter_20.pth'
    note = checkpoint_choice_note(tmp_path, tmp_path / 'iter_20.pth')
    assert 'last_checkpoint is missing' in note and 'took iter_20.pth' in note
    (tmp_path / 'last_checkpoint').write_text('/elsewhere/iter_30.pth')
    assert latest_checkpoint(tmp_path) == tmp_path / 'iter_20.pth'
    assert 'names iter_30.pth, which is not there' in checkpoint_choice_note(tmp_path, tmp_path / 'iter_20.pth')
    (tmp_path / 'last_checkpoint').write_text('/elsewhere/iter_10.pth')
    assert latest_checkpoint(tmp_path) == tmp_path / 'iter_10.pth'
    assert checkpoint_choice_note(tmp_path, tmp_path / 'iter_10.pth') is None


@pytest.mark.parametrize('marker', [None, 'iter_8.pth'])
def test_npe_test_takes_the_highest_iteration_when_last_checkpoint_fails(trained_run, tmp_path, script,
                                                                        marker):
    """Before: the newest file by modification time (iter_2, touched after iter_4), silently."""
    work_dir = _stale_marker_copy(trained_run, tmp_path / 'run', marker)
    proc = script('npe-test', str(work_dir), '--scale-factor', '1', cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f'npe-test: {work_dir / "iter_4.pth"}' in proc.stdout, proc.stdout
    note = next(line for line in proc.stdout.splitlines() if line.startswith('npe-test: note: '))
    assert 'last_checkpoint' in note and 'took iter_4.pth, the highest iteration' in note


@pytest.mark.integration
def test_several_s_on_a_run_without_pem_says_s_has_no_effect(tmp_path, script):
    """Issue 18: identical rows for every s on a 0-PEM run, without a word. A real 2-iteration
    0-PEM training of the smoke set; a note for several s, none for one s."""
    from npe import datasets

    datasets.get('smoke').prepare(tmp_path / 'data')
    run = tmp_path / 'run'
    proc = script('npe-train', 'npe::smoke_unet.py', '--num-pem', '0', '--work-dir', str(run),
                  '--data-root', str(tmp_path / 'data'), '--cfg-options', 'train_cfg.max_iters=2',
                  'train_cfg.val_interval=2', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    several = script('npe-test', str(run), '--scale-factor', '1', '2', cwd=tmp_path)
    assert several.returncode == 0, several.stderr[-3000:]
    assert 'num_pem=0), so s has no effect' in several.stdout
    one = script('npe-test', str(run), '--scale-factor', '2', cwd=tmp_path)
    assert one.returncode == 0 and 'no effect' not in one.stdout
