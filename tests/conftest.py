"""Shared fixtures: tiny generated datasets in MMSeg layouts, and running the kit's console scripts."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

#: The UNet STARE config of MMSeg (batch 4 x 128x128 crops); the kit's reference CPU model.
STARE_UNET = 'mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py'


def write_stare_like(root: Path, n_train: int = 4, n_val: int = 2, size: int = 160,
                     seed: int = 0) -> Path:
    """Write a generated set in STARE's MMSeg layout under ``root/STARE`` and return that folder.

    ``images/{training,validation}/imNNNN.png`` (RGB) and ``annotations/.../imNNNN.ah.png`` with
    labels 0 (background) / 1 (vessel): dark random curves on a noisy reddish disc, so a model can
    learn something in a few iterations and both classes occur in every image.
    """
    import cv2  # from opencv, an MMCV dependency

    rng = np.random.default_rng(seed)
    folder = root / 'STARE'
    index = 0
    for split, count in (('training', n_train), ('validation', n_val)):
        (folder / 'images' / split).mkdir(parents=True, exist_ok=True)
        (folder / 'annotations' / split).mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            index += 1
            label = np.zeros((size, size), np.uint8)
            for _ in range(6):
                xs = np.linspace(0, size - 1, 24)
                ys = size * rng.uniform(0.1, 0.9) + size * 0.15 * np.sin(
                    xs / size * rng.uniform(2, 8) + rng.uniform(0, 6))
                pts = np.stack([xs, ys], 1).astype(np.int32)
                if rng.random() < 0.5:
                    pts = pts[:, ::-1].copy()
                cv2.polylines(label, [pts], False, 1, thickness=int(rng.integers(2, 5)))
            image = np.empty((size, size, 3), np.float32)
            image[..., 0] = 60 + rng.normal(0, 12, (size, size))    # B
            image[..., 1] = 90 + rng.normal(0, 12, (size, size))    # G
            image[..., 2] = 190 + rng.normal(0, 12, (size, size))   # R
            image[label == 1] -= (40, 60, 90)
            name = f'im{index:04d}'
            cv2.imwrite(str(folder / 'images' / split / f'{name}.png'),
                        np.clip(image, 0, 255).astype(np.uint8))
            cv2.imwrite(str(folder / 'annotations' / split / f'{name}.ah.png'), label)
    return folder


@pytest.fixture(scope='session')
def stare_root(tmp_path_factory) -> Path:
    """A tiny generated dataset in STARE layout (4 training / 2 validation images, 160x160)."""
    return write_stare_like(tmp_path_factory.mktemp('data'))


def stare_options(data: Path, max_iters: int = 4, val_interval: int = 4,
                  checkpoint_interval: int = 2) -> list[str]:
    """``--cfg-options`` that point the UNet STARE config at ``data`` and make it a seconds-long run.

    Batch 2 (training keeps MMSeg's random resize and 128x128 crops), no worker processes, a log line
    every iteration. Validation/test resize images to 128x128 instead of 605x700, so the sliding
    window (128, stride 85) runs once per image instead of 49 times: a UNet window costs ~0.5 s on
    a busy 2-core machine.
    """
    return [
        f'train_dataloader.dataset.dataset.data_root={data}',
        f'val_dataloader.dataset.data_root={data}',
        f'test_dataloader.dataset.data_root={data}',
        'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        'val_dataloader.dataset.pipeline.1.scale=(128,128)',
        'test_dataloader.dataset.pipeline.1.scale=(128,128)',
        f'train_cfg.max_iters={max_iters}', f'train_cfg.val_interval={val_interval}',
        f'default_hooks.checkpoint.interval={checkpoint_interval}', 'default_hooks.logger.interval=1',
    ]


def console_script(name: str) -> str:
    """Path of a console script installed next to the running interpreter (the venv's ``bin``)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f'{name} is not installed next to {sys.executable} (scripts/setup.sh installs it)',
                    pytrace=False)
    return str(path)


def run_script(name: str, *args: str, cwd: Path | None = None, timeout: float = 300,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run an installed console script in a real process; returns the completed process (text)."""
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    return subprocess.run([console_script(name), *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope='session')
def stare_opts(stare_root):
    """``stare_opts(**kwargs) -> list[str]``: :func:`stare_options` on ``stare_root``."""
    def make(**kwargs) -> list[str]:
        return stare_options(stare_root, **kwargs)
    return make


#: Options of the shared training run (``trained_run``): s is stored as 1.5 to check that npe-test
#: uses the trained value by default.
TRAINED_S = 1.5


@pytest.fixture(scope='session')
def trained_run(tmp_path_factory, stare_opts) -> Path:
    """Work dir of one real ``npe-train`` process: UNet STARE config, 1 PEM, 4 iterations of batch
    2 on the generated STARE-layout set, checkpoints at 2 and 4, s = 1.5. Treat it as read-only
    (copy it to modify it)."""
    work_dir = tmp_path_factory.mktemp('trained') / 'run'
    proc = run_script('npe-train', STARE_UNET, '--work-dir', str(work_dir), '--seed', '0',
                      '--scale-factor', str(TRAINED_S), '--cfg-options', *stare_opts(),
                      cwd=work_dir.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work_dir


def snapshot(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (to show nothing was modified)."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob('*')) if p.is_file()}


@pytest.fixture(scope='session')
def files_snapshot():
    """:func:`snapshot` as a fixture (test modules do not import conftest)."""
    return snapshot


@pytest.fixture(scope='session')
def script():
    """:func:`run_script` as a fixture: ``script('npe-test', *args, cwd=...)``."""
    return run_script


def expect_one_line_error(main, argv: list[str], capsys) -> str:
    """Run a CLI ``main`` in-process; assert exit status 2 and one ``error:`` line; return it."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err_lines) == 1, err_lines
    assert err_lines[0].startswith('error: ')
    return err_lines[0]


@pytest.fixture(scope='session')
def smoke_npe_run(tmp_path_factory) -> Path:
    """Work dir of a 1-PEM model trained 8 iterations (fixed protocol, seed 0) on the generated
    `smoke` set (3 classes, data under its own root), checkpoint at 8. Treat it as read-only."""
    import npe
    from npe import datasets

    root = tmp_path_factory.mktemp('smoke_npe')
    datasets.get('smoke').prepare(root / 'data')
    run = npe.train('npe::smoke_unet.py', num_pem=1, seed=0, protocol='fixed', work_dir=root / 'run',
                    data_root=root / 'data',
                    cfg_options={'train_cfg.max_iters': 8, 'train_cfg.val_interval': 8,
                                 'default_hooks.checkpoint.interval': 8})
    return Path(run['work_dir'])



@pytest.fixture(scope='session')
def local_smoke(tmp_path_factory) -> Path:
    """A folder with ``data``, ``results`` and ``work_dirs`` of one real ``npe-repro smoke`` process on
    this stack: the local run other stacks and launchers (the CUDA twin, Slurm) are compared with.
    Treat it as read-only."""
    run = tmp_path_factory.mktemp('local_smoke')
    proc = run_script('npe-repro', 'smoke', '--data-root', str(run / 'data'), '--results-dir',
                      str(run / 'results'), '--work-dir', str(run / 'work_dirs'), cwd=run, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run

# ----------------------------------------------------------------------------- no skip passes in CI
#: Skip reasons allowed in CI, each naming a state no CI machine of this project can be in
#: (tests/README.md). Empty: the tests that depend on the device assert what this device must do
#: (CPU or CUDA) instead of skipping, so nothing may skip in CI.
CI_ALLOWED_SKIPS: dict[str, str] = {}


def in_ci() -> bool:
    """CI=true (or 1/yes), as .ci/run sets it."""
    return os.environ.get('CI', '').strip().lower() in ('1', 'true', 'yes')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skipped test is a failed test, unless its reason is on :data:`CI_ALLOWED_SKIPS`: a run
    that tested nothing of Slurm, Docker or the image's stack must not be green."""
    outcome = yield
    report = outcome.get_result()
    if not (in_ci() and report.skipped) or hasattr(report, 'wasxfail'):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix('Skipped: ')
    if reason in CI_ALLOWED_SKIPS:
        return
    report.outcome = 'failed'
    report.longrepr = f'skipped in CI, which counts as a failure (tests/README.md): {reason}'
