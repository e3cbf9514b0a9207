"""``npe-train``: train an MMSeg config with prior estimator modules (the reference's train script).

Library use (the recipe driver calls these instead of the CLI)::

    from npe.cli.train import build_train_config, run_training, train
    cfg = build_train_config('mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py', num_pem=1,
                             work_dir='work_dirs/x', seed=0, cfg_options={'train_cfg.max_iters': 50})
    info = run_training(cfg)   # {'work_dir', 'checkpoint', 'iterations', 'wall_time_s', ...}

Everything a user can get wrong (flags, config, data folders, checkpoint paths) is checked in
:func:`build_train_config`, before anything is written to disk; only :func:`run_training` creates
the work dir.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import io
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from npe.cli.common import (LAUNCHERS, ArgumentParser, CfgOptionsAction, merge_cfg_options,
                            own_runner_instances, quiet_library_warnings)
from npe.errors import UserError, cli_entry
from npe.files import write_text_atomic

#: Written by :func:`run_training` into the work dir: which dumped config belongs to the last run.
RUN_FILE = 'npe_train.json'
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


# --------------------------------------------------------------------------- parsing
def build_parser() -> ArgumentParser:
    """The ``npe-train`` argument parser (the reference's flags plus the kit's)."""
    p = ArgumentParser(prog='npe-train',
                       description='Train an MMSegmentation config with NPE prior estimator modules.')
    p.add_argument('config', metavar='BASE_CONFIG',
                   help="an MMSeg config file or package name, e.g. "
                        "'mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py'")
    p.add_argument('--load-from', metavar='CKPT',
                   help='initial checkpoint; a plain MMSeg checkpoint initialises the main head')
    p.add_argument('--work-dir', metavar='DIR',
                   help='where logs and checkpoints go (default ./work_dirs/<config stem>/)')
    p.add_argument('--data-root', metavar='DIR',
                   help="the kit's data root: STARE, ADE20K and the built-in sets are read from "
                        'DIR/<dataset folder> (default $NPE_DATA_ROOT or segmentation/data); for '
                        "other datasets DIR is the dataset folder (default: the config's data_root)")
    p.add_argument('--freeze-backbone', action='store_true', help='do not train the backbone')
    p.add_argument('--freeze-decode', action='store_true', help='do not train the original head')
    p.add_argument('--num-pem', type=int, default=1, metavar='M',
                   help='number of prior estimator modules (0 = baseline; default 1)')
    p.add_argument('--pem-type', default='auto', choices=('auto', 'FCNHead'),
                   help='auto = BN-free copy of the decode head; FCNHead = light head (default auto)')
    p.add_argument('--scale-factor', type=float, default=1.0, metavar='S',
                   help='s of NPE-LA, stored in the config for testing (default 1)')
    p.add_argument('--protocol', default='upstream', choices=('upstream', 'fixed'),
                   help="upstream = the reference's effective behaviour, fixed = its documented one")
    p.add_argument('--seed', type=int, help='random seed')
    p.add_argument('--deterministic', action='store_true', help='deterministic cuDNN/algorithms')
    p.add_argument('--resume', action='store_true',
                   help="continue from the work dir's latest checkpoint (start fresh if none)")
    p.add_argument('--amp', action='store_true', help='mixed precision (needs a GPU)')
    p.add_argument('--launcher', default='none', choices=LAUNCHERS, help='job launcher')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, metavar='KEY=VALUE',
                   help='override config keys, applied last (MMEngine syntax, e.g. '
                        'train_cfg.max_iters=100 train_dataloader.batch_size=2)')
    return p


# --------------------------------------------------------------------------- checks
def _is_url(path: str) -> bool:
    return '://' in str(path)


def _dataset_hint(dataset_type: str | None) -> str:
    """``npe-data prepare <name>`` for the kit's dataset with this MMSeg type, else a generic hint."""
    from npe.datasets import for_mmseg_type

    spec = for_mmseg_type(dataset_type)
    return f'npe-data prepare {spec.name}' if spec is not None else 'npe-data prepare <dataset>'


def check_data(cfg, loaders: Sequence[str] = _LOADERS) -> None:
    """:class:`UserError` naming the first missing or empty data folder of the given dataloaders.

    Catches what would otherwise be a deep traceback from inside the dataloader: a ``data_root`` put
    on a ``RepeatDataset`` wrapper, a missing folder, an empty image folder.
    """
    from npe.config import leaf_datasets

    for loader in loaders:
        top = (cfg.get(loader) or {}).get('dataset') or {}
        if ('dataset' in top or 'datasets' in top) and 'data_root' in top:
            raise UserError(f'{loader}.dataset is a {top.get("type", "wrapper")} and takes no '
                            f'data_root; set {loader}.dataset.dataset.data_root instead')
        for key, dataset in leaf_datasets(top, f'{loader}.dataset'):
            root = Path(dataset.get('data_root', '') or '')
            prefix = dataset.get('data_prefix') or {}
            fix = (f'prepare the data with `{_dataset_hint(dataset.get("type"))}` or set '
                   f'--cfg-options {key}.data_root=DIR')
            for name in ('img_path', 'seg_map_path'):
                if not prefix.get(name):
                    continue
                folder = root / prefix[name]
                if not folder.is_dir():
                    raise UserError(f'{loader}: data folder {folder} does not exist; {fix}')
                if name == 'img_path' and not any(folder.iterdir()):
                    raise UserError(f'{loader}: data folder {folder} is empty; {fix}')


def latest_checkpoint(work_dir: str | Path) -> Path | None:
    """The checkpoint a run in ``work_dir`` saved last (``last_checkpoint`` file, else newest
    ``iter_*.pth`` / ``epoch_*.pth``); None if there is none.

    ``last_checkpoint`` holds the absolute path at save time; the file of that name inside
    ``work_dir`` wins, so a copied or moved work dir uses its own checkpoint.
    """
    work_dir = Path(work_dir)
    marker = work_dir / 'last_checkpoint'
    if marker.is_file():
        recorded = Path(marker.read_text().strip())
        # The file of that name in work_dir first: a copied or moved work dir resumes from its own.
        for candidate in (work_dir / recorded.name, recorded):
            if candidate.is_file():
                return candidate
    def number(p: Path) -> int:
        digits = p.stem.split('_')[-1]
        return int(digits) if digits.isdigit() else -1
    ckpts = sorted(list(work_dir.glob('iter_*.pth')) + list(work_dir.glob('epoch_*.pth')),
                   key=lambda p: (p.stat().st_mtime, number(p)))
    return ckpts[-1] if ckpts else None


def _fix_dataloaders(cfg) -> None:
    """``persistent_workers`` needs workers; MMSeg configs set it, users often set num_workers=0."""
    for loader in _LOADERS:
        loader_cfg = cfg.get(loader)
        if loader_cfg and loader_cfg.get('num_workers', 1) == 0 and loader_cfg.get('persistent_workers'):
            loader_cfg.persistent_workers = False


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# --------------------------------------------------------------------------- library API
def build_train_config(base_config: str, *,
                       load_from: str | None = None,
                       work_dir: str | Path | None = None,
                       freeze_backbone: bool = False,
                       freeze_decode: bool = False,
                       num_pem: int = 1,
                       pem_type: str = 'auto',
                       scale_factor: float = 1.0,
                       protocol: str = 'upstream',
                       cfg_options: dict[str, Any] | None = None,
                       seed: int | None = None,
                       deterministic: bool = False,
                       resume: bool = False,
                       amp: bool = False,
                       launcher: str = 'none',
                       data_root: str | Path | None = None,
                       kit_data_root: str | Path | None = None,
                       check_data_folders: bool = True):
    """The full training config of ``npe-train``, validated; writes nothing.

    Order: base config -> :func:`npe.apply_npe` (wrapper, protocol, batch size 16, schedule) ->
    ``data_root`` (every dataset, optional) -> ``cfg_options`` (last, like the reference) -> work
    dir, seed, launcher, AMP, resume. ``resume=True`` resumes from the work dir's latest checkpoint
    if there is one (``cfg.load_from`` is then that checkpoint, so MMEngine does not "resume" from
    the initial ``load_from`` checkpoint), else trains from the start. Protocol warnings go to stderr
    only once every check has passed. Raises :class:`UserError` for bad input.
    """
    from npe.config import kit_dataset_folder, load_base_config, set_data_root

    if launcher not in LAUNCHERS:
        raise UserError(f'unknown launcher {launcher!r}; choose one of {", ".join(LAUNCHERS)}')
    if load_from and not _is_url(load_from) and not Path(load_from).is_file():
        raise UserError(f'--load-from {load_from}: no such checkpoint file')
    if work_dir is not None and Path(work_dir).exists() and not Path(work_dir).is_dir():
        raise UserError(f'--work-dir {work_dir} exists and is not a folder')
    if amp and not _cuda_available():
        # MMEngine's AmpOptimWrapper refuses to run without CUDA/NPU/MLU (no CPU autocast path).
        raise UserError('--amp needs a GPU (MMEngine mixed precision does not run on CPU); drop --amp')

    cfg = load_base_config(str(base_config))
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper'):
        if not cfg.get(key):
            raise UserError(f'config {base_config!r} has no {key}; npe-train needs a complete '
                            'training config (model, data, schedule, optimizer)')

    from npe import apply_npe

    warnings = io.StringIO()
    with contextlib.redirect_stderr(warnings):  # replayed below, after the remaining checks
        cfg = apply_npe(cfg, num_pem=num_pem, pem_type=pem_type, scale_factor=scale_factor,
                        freeze_backbone=freeze_backbone, freeze_decode=freeze_decode,
                        load_from=load_from, protocol=protocol)
    if data_root is None:
        data_root = kit_dataset_folder(cfg, kit_data_root)
    if data_root is not None:
        set_data_root(cfg, data_root)
    merge_cfg_options(cfg, cfg_options)
    _fix_dataloaders(cfg)

    if work_dir is None:
        work_dir = cfg.get('work_dir') or Path('work_dirs') / Path(cfg.filename or 'npe').stem
    cfg.work_dir = str(Path(work_dir).resolve())
    if Path(cfg.work_dir).exists() and not Path(cfg.work_dir).is_dir():
        raise UserError(f'work dir {cfg.work_dir} exists and is not a folder')
    if seed is not None or deterministic:
        cfg.randomness = dict(seed=seed, deterministic=bool(deterministic))
    cfg.launcher = launcher
    own_runner_instances(cfg)
    if amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('dtype', 'float16')
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    cfg.resume = False
    if resume:
        last = latest_checkpoint(cfg.work_dir)
        if last is not None:
            cfg.resume = True
            # Named explicitly: MMEngine would otherwise resume from the initial --load-from
            # checkpoint, or (load_from None) from the absolute path in last_checkpoint, which is
            # another folder's file when the work dir was copied.
            cfg.load_from = str(last)
        else:
            warnings.write(f'warning: --resume: no checkpoint in {cfg.work_dir}; training from the '
                           'start\n')
    if check_data_folders:
        check_data(cfg)
    sys.stderr.write(warnings.getvalue())
    return cfg


def run_training(cfg) -> dict[str, Any]:
    """Train ``cfg`` (from :func:`build_train_config`) with MMEngine's Runner.

    Creates the work dir, writes ``npe_train.json`` there (the name of the config MMEngine dumped
    for this run, used by ``npe-test``) and trains. Returns ``{"work_dir": str, "checkpoint": str |
    None (last saved), "iterations": int, "wall_time_s": float, "config": str (dumped config),
    "log_dir": str (this run's timestamped folder), "scalars": str | None (its
    vis_data/scalars.json with the loss curve), "resumed": bool}``.
    """
    import npe
    from npe.checkpoint import allow_mmengine_checkpoints

    npe.register()
    allow_mmengine_checkpoints()
    if cfg.get('npe') is None:
        raise UserError('the config is not an NPE config; build it with build_train_config()')
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    # The file name MMEngine's Runner.dump_config() just wrote the config under.
    dumped = Path(runner.work_dir) / (Path(cfg.filename).name if cfg.filename
                                      else f'{runner.timestamp}.py')
    if is_main_process():
        record = dict(config=dumped.name, timestamp=runner.timestamp, log_dir=str(runner.log_dir),
                      npe=dict(cfg.npe), resume=bool(cfg.get('resume')),
                      created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'))
        write_text_atomic(Path(runner.work_dir) / RUN_FILE, json.dumps(record, indent=2) + '\n')
    start = time.perf_counter()
    runner.train()
    wall = time.perf_counter() - start
    ckpt = latest_checkpoint(runner.work_dir)
    scalars = Path(runner.log_dir) / 'vis_data' / 'scalars.json'
    return dict(work_dir=str(runner.work_dir), checkpoint=str(ckpt) if ckpt else None,
                iterations=int(runner.iter), wall_time_s=wall, config=str(dumped),
                log_dir=str(runner.log_dir), scalars=str(scalars) if scalars.is_file() else None,
                resumed=bool(cfg.get('resume')))


def train(base_config: str, **kwargs) -> dict[str, Any]:
    """:func:`build_train_config` then :func:`run_training` (same keyword arguments)."""
    return run_training(build_train_config(base_config, **kwargs))


# --------------------------------------------------------------------------- CLI
@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    """``npe-train`` entry point; bad input: one ``error:`` line on stderr, exit status 2."""
    quiet_library_warnings()
    args = build_parser().parse_args(argv)
    cfg = build_train_config(
        args.config, load_from=args.load_from, work_dir=args.work_dir,
        freeze_backbone=args.freeze_backbone, freeze_decode=args.freeze_decode,
        num_pem=args.num_pem, pem_type=args.pem_type, scale_factor=args.scale_factor,
        protocol=args.protocol, cfg_options=args.cfg_options, seed=args.seed,
        deterministic=args.deterministic, resume=args.resume, amp=args.amp, launcher=args.launcher,
        kit_data_root=args.data_root)
    info = run_training(cfg)
    print(f'npe-train: {info["iterations"]} iterations in {info["wall_time_s"]:.1f} s; '
          f'work dir {info["work_dir"]}; last checkpoint {info["checkpoint"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
