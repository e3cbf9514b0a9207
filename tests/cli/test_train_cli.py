"""``npe-train``: bad input (one line, exit 2, nothing written), the config it builds, and real
training + ``--resume`` on a generated STARE-layout set."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import expect_one_line_error

from npe.cli.train import main
from npe.training import build_train_config
from npe.work_dir import latest_checkpoint
from npe.errors import UserError
from npe.logs import showing_messages

STARE_UNET = 'mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py'
STEM = 'unet-s5-d16_fcn_4xb4-40k_stare-128x128'


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _fake_checkpoint(path: Path) -> str:
    """A readable (if weightless) torch checkpoint: the kit refuses cut-off or non-torch files."""
    import torch

    torch.save({'state_dict': {}}, path)
    return str(path)


def run_main_expect_error(argv: list[str], capsys) -> str:
    """Run this module's CLI in-process, expecting one ``error:`` line and exit status 2."""
    return expect_one_line_error(main, argv, capsys)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty folder, so a default ``./work_dirs`` would show up there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _nothing_written(folder: Path, allowed: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == allowed


# --------------------------------------------------------------------------- bad input
BAD_HEAD = """_base_ = ['mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py']
model = dict(decode_head=dict(_delete_=True, type='SegformerHead', in_channels=[64], in_index=[4],
                              channels=64, num_classes=2,
                              loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False)))
"""
BAD_LOSS = """_base_ = ['mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py']
model = dict(decode_head=dict(loss_decode=dict(_delete_=True, type='DiceLoss', loss_weight=1.0)))
"""


@pytest.mark.parametrize('case, expected', [
    ('head', "decode_head type 'SegformerHead' is not supported"),
    ('loss', 'NPE needs a CrossEntropyLoss'),
    ('both_frozen', 'leaves nothing to train'),
    ('missing_config', 'does not exist'),
    ('pem_type', "invalid choice: 'UPerHead'"),
    ('num_pem_negative', 'num_pem must be an integer >= 0'),
    ('scale_zero', 'scale factor must be a finite number > 0'),
    ('missing_data', 'nodata/STARE/images/training does not exist'),
    ('wrapper_data_root', 'takes no data_root; set train_dataloader.dataset.dataset.data_root'),
    ('cfg_options_syntax', 'expects KEY=VALUE pairs'),
    ('missing_load_from', 'no such checkpoint file'),
    ('protocol', "invalid choice: 'paper'"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(case, expected, in_tmp, capsys, monkeypatch):
    monkeypatch.setenv('NPE_DATA_ROOT', str(in_tmp / 'nodata'))
    work_dir = in_tmp / 'wd'
    config = STARE_UNET
    extra: list[str] = []
    if case == 'head':
        config = _write(in_tmp / 'head.py', BAD_HEAD)
    elif case == 'loss':
        config = _write(in_tmp / 'loss.py', BAD_LOSS)
    elif case == 'both_frozen':
        extra = ['--num-pem', '0', '--freeze-backbone', '--freeze-decode']
    elif case == 'missing_config':
        config = str(in_tmp / 'no_such_config.py')
    elif case == 'pem_type':
        extra = ['--pem-type', 'UPerHead']
    elif case == 'num_pem_negative':
        extra = ['--num-pem', '-1']
    elif case == 'scale_zero':
        extra = ['--scale-factor', '0']
    elif case == 'missing_data':
        pass  # STARE is looked for under the kit's data root, which is empty here
    elif case == 'wrapper_data_root':
        extra = ['--cfg-options', f'train_dataloader.dataset.data_root={in_tmp}']
    elif case == 'cfg_options_syntax':
        extra = ['--cfg-options', 'train_cfg.max_iters']
    elif case == 'missing_load_from':
        extra = ['--load-from', str(in_tmp / 'none.pth')]
    elif case == 'protocol':
        extra = ['--protocol', 'paper']
    line = run_main_expect_error([config, '--work-dir', str(work_dir), *extra], capsys)
    assert expected in line
    before = {'head.py'} if case == 'head' else {'loss.py'} if case == 'loss' else set()
    _nothing_written(in_tmp, before)


def test_default_work_dir_not_created_on_error(in_tmp, capsys):
    """Without --work-dir the default ./work_dirs/<stem> must not appear either."""
    run_main_expect_error([STARE_UNET, '--num-pem', '0', '--freeze-backbone', '--freeze-decode'],
                          capsys)
    run_main_expect_error([STARE_UNET], capsys)  # data missing: checked after the config is built
    _nothing_written(in_tmp, set())


def test_amp_is_a_user_error_on_cpu_and_mixed_precision_on_cuda(in_tmp, capsys):
    """``--amp`` without CUDA: one line, nothing written. With CUDA the same flags build MMEngine's
    AmpOptimWrapper (a real AMP training step: tests/test_launch.py, on the same kind of machine)."""
    import torch

    if not torch.cuda.is_available():
        line = run_main_expect_error([STARE_UNET, '--amp'], capsys)
        assert '--amp needs a GPU' in line
        _nothing_written(in_tmp, set())
        return
    cfg = build_train_config(STARE_UNET, amp=True, amp_dtype='float16', check_data_folders=False)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'float16'
    assert cfg.optim_wrapper.loss_scale == 'dynamic' and cfg.npe['amp'] == 'float16'


def test_bad_input_in_a_real_process(tmp_path):
    """The console script itself: exit 2, exactly one stderr line (no library warnings), no files."""
    proc = subprocess.run([str(Path(sys.executable).parent / 'npe-train'),
                           _write(tmp_path / 'loss.py', BAD_LOSS)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith('error: decode_head.loss_decode')
    _nothing_written(tmp_path, {'loss.py'})


def test_python_m_shims_show_help():
    for module, prog in (('npe.cli.train', 'npe-train'), ('npe.cli.test', 'npe-test')):
        proc = subprocess.run([sys.executable, '-m', module, '--help'], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f'usage: {prog}')


# --------------------------------------------------------------------------- the config it builds
def test_config_defaults_and_overrides(stare_root, in_tmp, capsys):
    data = stare_root
    with showing_messages():   # the lines the commands show
        cfg = build_train_config(
            STARE_UNET, num_pem=2, pem_type='FCNHead', scale_factor=2.5, seed=3, deterministic=True,
            protocol='fixed', launcher='pytorch', world_size=2,  # built here, launched by torchrun later
            cfg_options={'train_dataloader.dataset.dataset.data_root': str(data),
                         'val_dataloader.dataset.data_root': str(data),
                         'test_dataloader.dataset.data_root': str(data),
                         'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0})
    assert cfg.work_dir == str(in_tmp / 'work_dirs' / STEM)  # reference default, not created
    assert not (in_tmp / 'work_dirs').exists()
    head = cfg.model.decode_head
    assert (head.type, head.num_pem, head.pem_type) == ('MultiHeadWrapper', 2, 'FCNHead')
    assert isinstance(head.scale_factor, float) and head.scale_factor == 2.5
    # --cfg-options win over the forced 16; that total is split over the 2 processes
    assert cfg.train_dataloader.batch_size == 1
    assert cfg.npe.distributed == dict(launcher='pytorch', world_size=2, batch_per_process=1,
                                       total_batch=2)
    assert cfg.model_wrapper_cfg.find_unused_parameters is True  # docs/method.md section 5 row 4
    assert cfg.train_dataloader.persistent_workers is False  # no workers: would crash otherwise
    assert cfg.train_cfg.max_iters == 600  # STARE schedule of the reference
    assert cfg.randomness == dict(seed=3, deterministic=True)
    assert cfg.launcher == 'pytorch'
    assert cfg.resume is False
    assert cfg.npe.protocol == 'fixed'
    err = capsys.readouterr().err
    assert 'protocol upstream' not in err   # protocol fixed: no departure warnings
    # apply_npe names what it replaces, but not batch_size: cfg_options set it again (2, not 16)
    assert [line.split(':')[1].strip() for line in err.splitlines()] == [
        'model.auxiliary_head', 'schedule (train_cfg, param_scheduler)', 'default_hooks.checkpoint.interval']


def test_upstream_warnings_come_after_the_checks(stare_root, in_tmp, capsys):
    with showing_messages():   # the lines the commands show
        cfg = build_train_config(STARE_UNET, dataset_folder=stare_root)
    err = capsys.readouterr().err
    assert 'warning: protocol upstream' in err and '--protocol fixed' in err
    assert cfg.train_dataloader.dataset.dataset.data_root == str(stare_root)


def test_resume_picks_the_work_dirs_latest_checkpoint(stare_root, in_tmp, capsys):
    work_dir = in_tmp / 'wd'
    with showing_messages():   # the lines the commands show
        cfg = build_train_config(STARE_UNET, dataset_folder=stare_root, work_dir=work_dir, resume=True,
                                 load_from=_fake_checkpoint(in_tmp / 'init.pth'))
    assert cfg.resume is False and cfg.load_from == str(in_tmp / 'init.pth')
    assert '--resume: no checkpoint' in capsys.readouterr().err
    work_dir.mkdir()
    for name in ('iter_2.pth', 'iter_4.pth'):
        _fake_checkpoint(work_dir / name)
    # last_checkpoint written by a run in another folder (e.g. this one is a copy): use our file.
    (work_dir / 'last_checkpoint').write_text('/elsewhere/run/iter_4.pth')
    assert latest_checkpoint(work_dir) == work_dir / 'iter_4.pth'
    cfg = build_train_config(STARE_UNET, dataset_folder=stare_root, work_dir=work_dir, resume=True,
                             load_from=str(in_tmp / 'init.pth'))
    # Resuming must not start again from the initial --load-from checkpoint.
    assert cfg.resume is True and cfg.load_from == str(work_dir / 'iter_4.pth')


# --------------------------------------------------------------------------- real training
@pytest.mark.integration
def test_training_run_writes_checkpoints_and_its_config(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {'iter_2.pth', 'iter_4.pth', 'last_checkpoint', 'npe_train.json', f'{STEM}.py'} <= names
    assert latest_checkpoint(trained_run) == trained_run / 'iter_4.pth'
    dumped = (trained_run / f'{STEM}.py').read_text()
    assert "type='MultiHeadWrapper'" in dumped and 'scale_factor=1.5' in dumped
    log = next(trained_run.glob('2*/2*.log')).read_text()
    assert 'Iter(train) [4/4]' in log and 'loss_one_way_logistic' in log


@pytest.mark.integration
def test_resume_continues_from_the_last_checkpoint(trained_run, stare_opts, tmp_path, capsys,
                                                   files_snapshot):
    work_dir = tmp_path / 'run'
    shutil.copytree(trained_run, work_dir)
    before = files_snapshot(work_dir)
    main([STARE_UNET, '--work-dir', str(work_dir), '--seed', '0', '--scale-factor', '1.5',
          '--resume', '--cfg-options', *stare_opts(max_iters=6)])
    out = capsys.readouterr().out
    assert '6 iterations' in out
    assert (work_dir / 'iter_6.pth').is_file()
    assert latest_checkpoint(work_dir) == work_dir / 'iter_6.pth'
    logs = sorted(work_dir.glob('2*/2*.log'))
    assert len(logs) == 2  # the first run's and the resumed run's
    log = logs[-1].read_text()
    assert f'Load checkpoint from {work_dir / "iter_4.pth"}' in log
    assert 'resumed epoch: 0, iter: 4' in log
    iters = [int(n) for n in re.findall(r'Iter\(train\) \[\s*(\d+)/6\]', log)]
    assert iters == [5, 6]
    # The resumed run did not rewrite the first run's checkpoints.
    after = files_snapshot(work_dir)
    for name in ('iter_2.pth', 'iter_4.pth'):
        assert after[name] == before[name]

    import torch

    from npe.checkpoint import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()
    meta = torch.load(work_dir / 'iter_6.pth', map_location='cpu')['meta']  # weights_only default
    assert meta['iter'] == 6


def test_kit_data_root_locates_known_datasets(stare_root, monkeypatch):
    """STARE is read from <data root>/STARE: flag > $NPE_DATA_ROOT > segmentation/data."""
    def roots(cfg):
        return {cfg.train_dataloader.dataset.dataset.data_root, cfg.val_dataloader.dataset.data_root,
                cfg.test_dataloader.dataset.data_root}

    monkeypatch.delenv('NPE_DATA_ROOT', raising=False)
    cfg = build_train_config(STARE_UNET, kit_data_root=stare_root.parent, check_data_folders=True)
    assert roots(cfg) == {str(stare_root)}
    monkeypatch.setenv('NPE_DATA_ROOT', str(stare_root.parent))
    assert roots(build_train_config(STARE_UNET)) == {str(stare_root)}
    monkeypatch.setenv('NPE_DATA_ROOT', str(stare_root.parent / 'elsewhere'))
    with pytest.raises(UserError, match='elsewhere'):
        build_train_config(STARE_UNET)  # checked before anything is written


def test_each_runner_in_a_process_logs_to_its_own_folder(stare_root, tmp_path):
    """MMEngine reuses visualizers and loggers by name; the driver builds many runners in one process."""
    from mmengine.runner import Runner

    import npe

    npe.register()
    folders, logs = [], []
    for name in ('a', 'b'):
        cfg = build_train_config(STARE_UNET, dataset_folder=stare_root, work_dir=tmp_path / name)
        runner = Runner.from_cfg(cfg)
        backend = runner.visualizer._vis_backends['LocalVisBackend']
        folders.append(Path(backend._save_dir).resolve())
        assert Path(runner.log_dir).resolve() in folders[-1].parents
        logs.append(Path(runner.logger.log_file).resolve())
        assert Path(runner.log_dir).resolve() in logs[-1].parents
    assert folders[0] != folders[1] and logs[0] != logs[1]


def test_own_config_data_root_wins_over_the_kit_data_root(stare_root, tmp_path, monkeypatch, capsys):
    """A data_root the user's config sets (not MMSeg's stock 'data/STARE') is used; --data-root still
    wins over it, and --help says the order."""
    def roots(cfg):
        return {cfg.train_dataloader.dataset.dataset.data_root, cfg.val_dataloader.dataset.data_root,
                cfg.test_dataloader.dataset.data_root}

    monkeypatch.setenv('NPE_DATA_ROOT', str(tmp_path / 'elsewhere'))  # the kit's root: no STARE there
    per_loader = _write(tmp_path / 'mine.py', (
        f"_base_ = ['{STARE_UNET}']\n"
        f"train_dataloader = dict(dataset=dict(dataset=dict(data_root='{stare_root}')))\n"
        f"val_dataloader = dict(dataset=dict(data_root='{stare_root}'))\n"
        f"test_dataloader = dict(dataset=dict(data_root='{stare_root}'))\n"))
    assert roots(build_train_config(per_loader)) == {str(stare_root)}
    top_level = _write(tmp_path / 'top.py', f"_base_ = ['{STARE_UNET}']\ndata_root = '{stare_root}'\n")
    assert roots(build_train_config(top_level)) == {str(stare_root)}
    with pytest.raises(UserError, match='flagged/STARE'):  # the flag beats the config
        build_train_config(per_loader, kit_data_root=tmp_path / 'flagged')
    with pytest.raises(SystemExit):
        main(['--help'])
    help_text = ' '.join(capsys.readouterr().out.split())
    assert ('first found: --data-root DIR; the data_root your config sets itself (not '
            "MMSeg's stock relative default such as data/STARE); $NPE_DATA_ROOT; segmentation/data") in help_text


def test_resume_takes_the_highest_iteration_when_last_checkpoint_is_gone(trained_run, stare_opts,
                                                                          tmp_path, capsys):
    """--resume with last_checkpoint removed and the older iter_2.pth touched after iter_4.pth: it
    resumes from iter_4 (by number, never by modification time) and says why."""
    import os

    work_dir = tmp_path / 'run'
    shutil.copytree(trained_run, work_dir, ignore=shutil.ignore_patterns('test_*'))
    (work_dir / 'last_checkpoint').unlink()
    newer = (work_dir / 'iter_4.pth').stat().st_mtime + 60
    os.utime(work_dir / 'iter_2.pth', (newer, newer))
    capsys.readouterr()
    from npe.cli.train import build_parser

    options = build_parser().parse_args([STARE_UNET, '--cfg-options', *stare_opts(max_iters=6)]).cfg_options
    with showing_messages():   # the lines the commands show
        cfg = build_train_config(STARE_UNET, work_dir=work_dir, seed=0, scale_factor=1.5, resume=True,
                                 cfg_options=options)
    assert cfg.resume and cfg.load_from == str(work_dir / 'iter_4.pth')
    err = capsys.readouterr().err
    assert 'took iter_4.pth, the highest iteration' in err, err


def test_help_texts_name_their_own_command_and_keep_names_whole(monkeypatch):
    """Issue 21: npe-test's help carried npe-train's launcher example and batch split, and
    npe-train's help cut a config name in two."""
    from npe.cli import test as test_cli
    from npe.cli import train as train_cli

    monkeypatch.setenv('COLUMNS', '80')
    test_help = ' '.join(test_cli.build_parser().format_help().split())   # words, wrapped anywhere
    assert '$(command -v npe-test)' in test_help
    assert 'command -v npe-train' not in test_help and '--batch-per-process' not in test_help
    train_help = train_cli.build_parser().format_help()
    words = ' '.join(train_help.split())
    assert '$(command -v npe-train)' in words and '--batch-per-process is given' in words
    assert "'mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py'" in train_help
