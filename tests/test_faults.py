"""Faults in real processes: a killed training resumes exactly, a cut-off checkpoint is recovered
from, a resume with other options is refused, bad checkpoints are one error line (issue 13)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CONFIG = 'npe::smoke_unet.py'
#: 6 iterations, a checkpoint and a validation every 2: the validation right after a checkpoint draws
#: from the same generators as training, so an exact resume has to replay it.
SHORT = ['train_cfg.max_iters=6', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
         'param_scheduler.0.end=6']


def cli(name: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    return subprocess.run([str(BIN / name), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith('error: '), lines
    assert 'weights_only' not in lines[0] and 'Traceback' not in proc.stderr
    return lines[0]


def train_args(work: Path, data: Path, *extra: str) -> list[str]:
    return [CONFIG, '--work-dir', str(work), '--data-root', str(data), '--seed', '0',
            '--deterministic', *extra, '--cfg-options', *SHORT]


def weights(path: Path) -> dict:
    import torch

    from npe.checkpoint import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope='module')
def smoke_data(tmp_path_factory) -> Path:
    from npe import datasets

    root = tmp_path_factory.mktemp('data')
    datasets.get('smoke').prepare(root)
    return root


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, smoke_data) -> Path:
    """An uninterrupted 6-iteration run (read-only: copy it to change it)."""
    work = tmp_path_factory.mktemp('full') / 'run'
    proc = cli('npe-train', *train_args(work, smoke_data))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not list(work.glob('.*.tmp')), 'a temporary checkpoint file was left behind'
    return work


@pytest.mark.integration
def test_sigkill_mid_training_then_resume_gives_the_same_model(tmp_path, smoke_data, uninterrupted):
    work = tmp_path / 'run'
    proc = subprocess.Popen([str(BIN / 'npe-train'), *train_args(work, smoke_data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not (work / 'iter_2.pth').exists():
            time.sleep(0.02)
        assert proc.poll() is None, 'the run ended before it could be killed'
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (work / 'iter_6.pth').exists()
    resumed = cli('npe-train', *train_args(work, smoke_data, '--resume'))
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    # Same batches, same random draws: the final weights are bit-identical, hence so are the metrics.
    assert same_weights(work / 'iter_6.pth', uninterrupted / 'iter_6.pth')
    from npe.work_dir import training_loss

    assert training_loss(work) == training_loss(uninterrupted)


@pytest.mark.integration
def test_cut_off_checkpoint_is_one_line_everywhere_and_resume_recovers(tmp_path, smoke_data,
                                                                      uninterrupted):
    work = tmp_path / 'run'
    shutil.copytree(uninterrupted, work)
    (work / 'last_checkpoint').unlink()
    last = work / 'iter_6.pth'
    os.truncate(last, last.stat().st_size // 3)   # as a kill during MMEngine's in-place save did
    os.utime(last, (time.time() + 5, time.time() + 5))

    err = one_error_line(cli('npe-test', str(work)))
    assert str(last) in err and 'cut off' in err and '--resume' in err
    err = one_error_line(cli('npe-train', *train_args(tmp_path / 'other', smoke_data, '--load-from', str(last))))
    assert str(last) in err and not (tmp_path / 'other').exists()

    resumed = cli('npe-train', *train_args(work, smoke_data, '--resume'))
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    notes = [line for line in resumed.stderr.splitlines() if 'iter_6.pth' in line and 'set aside' in line]
    assert len(notes) == 2, resumed.stderr[-3000:]  # announced at config time, then done
    assert (work / 'iter_6.pth.unreadable').is_file()
    assert same_weights(work / 'iter_6.pth', uninterrupted / 'iter_6.pth')


@pytest.mark.integration
def test_resume_with_other_options_is_refused_and_changes_nothing(smoke_data, uninterrupted,
                                                                  files_snapshot):
    before = files_snapshot(uninterrupted)
    err = one_error_line(cli('npe-train', *train_args(uninterrupted, smoke_data, '--resume',
                                                      '--num-pem', '0')))
    assert 'num_pem 1 -> 0' in err and str(uninterrupted) in err
    assert files_snapshot(uninterrupted) == before


@pytest.mark.integration
def test_npe_test_refuses_checkpoints_that_do_not_fit_and_stays_in_its_work_dir(tmp_path, uninterrupted):
    import torch

    ckpt = {'state_dict': weights(uninterrupted / 'iter_6.pth')}
    pem_keys = [k for k in ckpt['state_dict'] if '.pems.' in k]
    assert pem_keys
    for k in pem_keys:      # what a 0-PEM run's checkpoint looks like to a 1-PEM config
        del ckpt['state_dict'][k]
    torch.save(ckpt, tmp_path / 'no_pem.pth')
    err = one_error_line(cli('npe-test', str(uninterrupted), '--checkpoint', str(tmp_path / 'no_pem.pth')))
    assert 'does not fit' in err and 'decode_head.pems' in err

    copy = tmp_path / 'copy'    # a copied work dir without its .pth files
    shutil.copytree(uninterrupted, copy, ignore=shutil.ignore_patterns('*.pth', 'test_*'))
    err = one_error_line(cli('npe-test', str(copy)))
    assert 'no checkpoint in' in err and str(copy) in err
