"""Training: build an NPE training config, run it with MMEngine (its work dir's checkpoints and
losses are read by :mod:`npe.work_dir`).

Library use (``npe.train`` is :func:`train`)::

    from npe.training import build_train_config, run_training
    cfg = build_train_config('mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py', num_pem=1,
                             work_dir='work_dirs/x', seed=0, cfg_options={'train_cfg.max_iters': 50})
    info = run_training(cfg)   # {'work_dir', 'checkpoint', 'iterations', 'wall_time_s', ...}

Everything a user can get wrong (options, config, data folders, checkpoint paths) is checked in
:func:`build_train_config`, before anything is written to disk; only :func:`run_training` creates
the work dir.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, TypedDict

from npe import launch
from npe.arguments import Checker, check_npe_options
from npe.config import apply_npe, check_data, check_seed, load_base_config, register
from npe.constants import LAUNCHERS, RUN_FILE
from npe.errors import ConfigError, RunError
from npe.files import check_output_dir, write_json_atomic
from npe.logs import NOTE, RunnerLog, held_messages, recording_for_relay, relaying, showing_messages
from npe.options import DEFAULTS, TRAINING_OPTIONS
from npe.own_data import apply_own_data
from npe.runtime import apply_runtime, check_launcher, resolve_dataset_folder
# A run's checkpoints and losses have their own module; these names stay importable from here.
from npe.work_dir import (checkpoint_choice_note, latest_checkpoint, readable_checkpoint, set_aside,
                          training_loss)

log = logging.getLogger(__name__)

__all__ = ['TrainInfo', 'build_train_config', 'run_training', 'train', 'latest_checkpoint',
           'training_loss', 'RUN_FILE']


class TrainInfo(TypedDict):
    """What :func:`run_training` / :func:`train` return."""

    work_dir: str           #: the run's work dir (absolute)
    checkpoint: str | None  #: the last checkpoint saved
    iterations: int         #: iterations trained in total
    wall_time_s: float      #: wall time of this session
    wall_time_total_s: float  #: of the whole training: earlier parts (to their last checkpoint) + this session
    config: str             #: the config MMEngine dumped for this run
    log_dir: str            #: this session's timestamped folder
    scalars: str | None     #: its vis_data/scalars.json (loss curve), if written
    resumed: bool           #: whether the session resumed from a checkpoint
    distributed: dict       #: launcher, world_size, batch_per_process, total_batch
    device: str             #: what the model trained on: 'cuda' (with the GPU's name) or 'cpu'


def _is_url(path: str) -> bool:
    return '://' in str(path)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def build_train_config(base_config: str | Path, *,
                       load_from: str | None = None,
                       work_dir: str | Path | None = None,
                       freeze_backbone: bool = DEFAULTS.freeze_backbone,
                       freeze_decode: bool = DEFAULTS.freeze_decode,
                       num_pem: int = DEFAULTS.num_pem,
                       pem_type: str = DEFAULTS.pem_type,
                       scale_factor: float = DEFAULTS.scale_factor,
                       protocol: str = DEFAULTS.protocol,
                       keep_schedule: bool = False,
                       cfg_options: dict[str, Any] | None = None,
                       seed: int | None = None,
                       deterministic: bool = False,
                       resume: bool = False,
                       amp: bool = False,
                       amp_dtype: str = 'auto',
                       launcher: str = 'none',
                       world_size: int | None = None,
                       batch_per_process: int | None = None,
                       dataset_folder: str | Path | None = None,
                       kit_data_root: str | Path | None = None,
                       check_data_folders: bool = True, own_data=None):
    """The full training config of ``npe-train``, validated; writes nothing.

    Order: base config -> :func:`npe.apply_npe` (wrapper, protocol, batch size 16, schedule) ->
    dataset folder -> loader defaults -> ``cfg_options`` (like the reference) -> batch split, launcher
    -> work dir, seed, AMP, resume. ``keep_schedule``: see :func:`npe.apply_npe`. ``launcher`` ``pytorch`` / ``slurm`` (see :mod:`npe.launch`): the world size is the
    launcher's (under torchrun / srun) unless ``world_size`` is given (a config built now and launched
    later); the total batch is split over the processes unless ``batch_per_process`` is given.
    ``amp``: MMEngine's AmpOptimWrapper in ``amp_dtype`` (``auto`` = bf16 where the GPU has it,
    else fp16 with dynamic loss scaling). ``dataset_folder`` is a folder every dataset is pointed at;
    without it the dataset's folder follows :func:`npe.config.kit_dataset_folder` with the kit's data
    root ``kit_data_root`` (``--data-root``); ``own_data`` (:class:`npe.own_data.OwnData`) replaces the
    base config's data (:func:`npe.own_data.apply_own_data`). The runtime edits are :func:`npe.runtime.apply_runtime`'s.
    ``resume=True`` resumes from the work dir's latest checkpoint if there is one (``cfg.load_from``
    is then that checkpoint, so MMEngine does not "resume" from the initial ``load_from``
    checkpoint), else trains from the start. Protocol warnings are logged only once every check
    has passed. Raises :class:`~npe.errors.UserError` subclasses for bad input.
    """
    check_launcher(launcher)
    if seed is not None:
        check_seed(seed, 'seed (--seed)')
    if load_from and not _is_url(load_from):
        if not Path(load_from).is_file():
            raise ConfigError(f'load_from (--load-from) {load_from}: no such checkpoint file')
        from npe.checkpoint import unreadable_reason
        reason = unreadable_reason(load_from)
        if reason:
            raise ConfigError(f'load_from (--load-from) {load_from}: {reason}; download it again (npe-data '
                              'checkpoint URL) or give another file')
    if work_dir is not None and Path(work_dir).exists() and not Path(work_dir).is_dir():
        raise ConfigError(f'work_dir (--work-dir) {work_dir} exists and is not a folder')
    if launcher != 'none' and world_size is None:
        launch.check_launcher_environment(launcher)
        world_size = launch.world_size(launcher)
    if amp and not _cuda_available():   # refused before the config is loaded; apply_amp says the same
        raise ConfigError(launch.AMP_NEEDS_A_GPU)

    cfg = load_base_config(str(base_config))
    if own_data is not None:
        apply_own_data(cfg, own_data)
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper'):
        if not cfg.get(key):
            raise ConfigError(f'config {str(base_config)!r} has no {key}; npe-train needs a complete '
                              'training config (model, data, schedule, optimizer)')

    # the warnings are shown only after the remaining checks: none if one of them refuses the config
    with held_messages() as held:
        cfg = apply_npe(cfg, num_pem=num_pem, pem_type=pem_type, scale_factor=scale_factor,
                        freeze_backbone=freeze_backbone, freeze_decode=freeze_decode,
                        load_from=load_from, protocol=protocol, keep_schedule=keep_schedule)
        world = world_size or 1
        # inside the block: an unknown --cfg-options key's warning is shown only if no error follows
        apply_runtime(cfg, launcher=launcher, cfg_options=cfg_options,
                      folder=resolve_dataset_folder(cfg, kit_data_root) if dataset_folder is None
                      else dataset_folder,
                      before_options=lambda c: launch.loader_defaults(c, world),
                      after_options=lambda c: launch.distribute(c, launcher, world, batch_per_process))

        if work_dir is None:
            work_dir = cfg.get('work_dir') or Path('work_dirs') / Path(cfg.filename or 'npe').stem
        if Path(work_dir).resolve().exists() and not Path(work_dir).resolve().is_dir():
            raise ConfigError(f'work dir {Path(work_dir).resolve()} exists and is not a folder')
        check_output_dir(work_dir, 'work_dir (--work-dir)')   # as given: a link to a missing folder is refused
        cfg.work_dir = str(Path(work_dir).resolve())
        if seed is not None or deterministic:
            cfg.randomness = dict(seed=seed, deterministic=bool(deterministic))
        if amp:
            launch.apply_amp(cfg, amp_dtype)
        if resume:
            _check_same_options(cfg)
            last, bad = readable_checkpoint(cfg.work_dir)
            for path, reason in bad:
                log.warning('checkpoint %s is unreadable (%s); it will be set aside as %s.unreadable',
                            path, reason, path.name)
            if last is not None:
                note = checkpoint_choice_note(cfg.work_dir, last)
                if note:
                    log.warning('--resume: %s', note, extra=NOTE)
                cfg.resume = True
                # Named explicitly: MMEngine would otherwise resume from the initial --load-from
                # checkpoint, or (load_from None) from the absolute path in last_checkpoint, which is
                # another folder's file when the work dir was copied.
                cfg.load_from = str(last)
            else:
                log.warning('--resume: no checkpoint in %s (none that can be read); training from the start',
                            cfg.work_dir)
        fault_tolerant(cfg)
        if check_data_folders:
            check_data(cfg)
        held.drop = launch.rank() != 0  # one copy of the warnings, not one per process
        # apply_npe's "key: old -> new" about a key cfg_options sets again would name a value not used
        again = tuple(f'{key}:' for key in (cfg_options or {}))
        held.records = [r for r in held.records if not (again and r.name == 'npe.config'
                                                        and r.getMessage().startswith(again))]
    return cfg


def _check_same_options(cfg) -> None:
    """Refuse to resume a work dir whose run was trained with other NPE options (nothing written)."""
    record_file = Path(cfg.work_dir) / RUN_FILE
    if not record_file.is_file():
        return
    try:
        before = json.loads(record_file.read_text())['npe']
        before = {k: before[k] for k in TRAINING_OPTIONS}
    except (OSError, ValueError, KeyError, TypeError):
        raise RunError(f'{record_file} is damaged; resume cannot check the options the run was trained '
                       'with. Delete the work dir to start over, or give another work_dir (--work-dir)') from None
    changed = [f'{k} {before[k]!r} -> {cfg.npe[k]!r}' for k in TRAINING_OPTIONS if before[k] != cfg.npe[k]]
    if changed:
        raise RunError(f'--resume: {cfg.work_dir} was trained with other NPE options '
                       f'({", ".join(changed)}); resume with the same options, or give another work_dir (--work-dir)')


def fault_tolerant(cfg) -> None:
    """Atomic checkpoints and an exact resume (:mod:`npe.resume`) for a training config, in place."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if hook is not None and not hook.get('backend_args') and not hook.get('out_dir'):
        hook['backend_args'] = dict(backend='npe_atomic')
    if (cfg.get('train_cfg') or {}).get('type') in ('IterBasedTrainLoop', 'mmengine.IterBasedTrainLoop'):
        cfg.train_cfg['type'] = 'NPEIterBasedTrainLoop'
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'NPEResumeStateHook' for h in hooks):
        cfg.custom_hooks = hooks + [dict(type='NPEResumeStateHook')]


def run_training(cfg, console: bool = True, log_file: Path | None = None) -> TrainInfo:
    """Train ``cfg`` (from :func:`build_train_config`) with MMEngine's Runner.

    Creates the work dir, writes ``npe_train.json`` there (the name of the config MMEngine dumped
    for this run, used by ``npe-test``) and trains. ``console=False``: MMEngine's log and Python's
    warnings only in the run's log files; ``log_file``: appended there too. Returns a :class:`TrainInfo`.
    """
    from npe.checkpoint import allow_mmengine_checkpoints

    register()
    allow_mmengine_checkpoints()
    if cfg.get('npe') is None:
        raise RunError('the config is not an NPE config; build it with build_train_config()')
    if cfg.get('launcher', 'none') != 'none':
        launch.init_distributed(cfg.launcher, (cfg.npe.get('distributed') or {}).get('world_size'),
                                dist_cfg=(cfg.get('env_cfg') or {}).get('dist_cfg'))
    if Path(cfg.work_dir).is_dir():  # checkpoints a kill cut off: out of the way, one line each
        set_aside(readable_checkpoint(cfg.work_dir)[1])
    run_log = RunnerLog(log_file, console=console)
    with contextlib.closing(run_log), run_log.python_warnings():
        return _train(cfg, run_log.build(cfg))


def _train(cfg, runner) -> TrainInfo:
    """The rest of :func:`run_training`, with the Runner built."""
    from mmengine.dist import is_main_process

    from npe.hooks import NPEProgressHook
    from npe.resume import wall_time_before

    runner.register_hook(NPEProgressHook())   # progress lines and "resuming from iteration N"
    # The file name MMEngine's Runner.dump_config() just wrote the config under.
    dumped = Path(runner.work_dir) / (Path(cfg.filename).name if cfg.filename
                                      else f'{runner.timestamp}.py')
    if is_main_process():
        record = dict(config=dumped.name, timestamp=runner.timestamp, log_dir=str(runner.log_dir),
                      npe=dict(cfg.npe), resume=bool(cfg.get('resume')),
                      created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'))
        write_json_atomic(Path(runner.work_dir) / RUN_FILE, record)
    start = time.perf_counter()
    runner.train()
    wall = time.perf_counter() - start
    ckpt = latest_checkpoint(runner.work_dir)
    scalars = Path(runner.log_dir) / 'vis_data' / 'scalars.json'
    return TrainInfo(work_dir=str(runner.work_dir), checkpoint=str(ckpt) if ckpt else None,
                     iterations=int(runner.iter), wall_time_s=wall,
                     wall_time_total_s=wall + wall_time_before(runner), config=str(dumped),
                     log_dir=str(runner.log_dir), scalars=str(scalars) if scalars.is_file() else None,
                     resumed=bool(cfg.get('resume')), distributed=dict(cfg.npe.get('distributed') or {}),
                     device=model_device(runner.model))


def model_device(model) -> str:
    """Where ``model``'s weights are: ``cpu``, or ``cuda (GPU name)``: what a training really used,
    recorded in every result file (a GPU run that fell back to the CPU shows here)."""
    import torch

    param = next(iter(model.parameters()), None)
    if param is None:
        return 'cpu'
    if param.device.type != 'cuda':
        return param.device.type
    return f'cuda ({torch.cuda.get_device_name(param.device)})'


def train_launched(cfg, nproc: int, log=None) -> TrainInfo:
    """Train ``cfg`` (built with ``launcher='pytorch', world_size=nproc``) on ``nproc`` processes
    through torchrun: the config is saved in ``<work_dir>/.launch/`` and every process runs
    ``python -m npe.training CONFIG INFO`` (:func:`_launched_main`); rank 0 writes the TrainInfo."""
    folder = Path(cfg.work_dir) / '.launch'
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / (Path(cfg.filename).name if cfg.filename else 'npe_config.py')
    cfg.dump(str(config))
    info = folder / 'train_info.json'
    info.unlink(missing_ok=True)
    if log is None:   # the processes' output is on the console: their progress lines with it
        launch.run_torchrun(nproc, 'npe.training', [config, info])
    else:   # their output goes to ``log``: rank 0's progress comes back here, shown as in-process
        progress = folder / 'progress.jsonl'
        with relaying(progress):
            launch.run_torchrun(nproc, 'npe.training', [config, info, progress], log=log)
    return json.loads(info.read_text())


def _launched_main(config: str, info_file: str, progress: str | None = None) -> None:
    """One torchrun process of :func:`train_launched`; ``progress``: where rank 0 writes its
    progress records for the driver (:func:`npe.logs.relaying`)."""
    from mmengine.config import Config
    from mmengine.dist import is_main_process

    register()
    relay = Path(progress) if progress and launch.rank() == 0 else None
    # a process of its own: its warnings on its stderr, as npe-train shows them
    with showing_messages(), recording_for_relay(relay):
        info = run_training(Config.fromfile(config))
    if is_main_process():
        write_json_atomic(Path(info_file), info)
    launch.finish_distributed()


def train(base_config: str | Path, *,
          work_dir: str | Path | None = None,
          num_pem: int = DEFAULTS.num_pem,
          pem_type: str = DEFAULTS.pem_type,
          scale_factor: float = DEFAULTS.scale_factor,
          protocol: str = DEFAULTS.protocol,
          load_from: str | None = None,
          freeze_backbone: bool = DEFAULTS.freeze_backbone,
          freeze_decode: bool = DEFAULTS.freeze_decode,
          seed: int | None = None,
          cfg_options: dict[str, Any] | None = None,
          data_root: str | Path | None = None,
          verbose: bool = False,
          **options: Any) -> TrainInfo:
    """Train an MMSeg config with NPE prior estimator modules: what ``npe-train`` does, as a call.

    Args:
        base_config: a config file, or an ``mmseg::<path>`` / ``npe::<path>`` name, e.g.
            ``'mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py'``.
        work_dir: logs and checkpoints (default ``./work_dirs/<config stem>``).
        num_pem: prior estimator modules (0 = baseline trained under the same protocol).
        pem_type: ``'auto'`` (BN-free copy of the decode head) or ``'FCNHead'``.
        scale_factor: s of NPE-LA stored in the config (``npe.evaluate`` can use others).
        protocol: ``'upstream'`` (the reference's effective behaviour) or ``'fixed'``.
        load_from: initial checkpoint (a plain MMSeg checkpoint initialises the main head).
        freeze_backbone, freeze_decode: do not train the backbone / the original head.
        seed: random seed.
        cfg_options: config overrides applied last, e.g. ``{'train_cfg.max_iters': 100}``.
        data_root: the kit's data root (datasets the kit prepares are read from
            ``<data_root>/<dataset folder>``); see :func:`npe.config.kit_dataset_folder`.
        verbose: MMEngine's log also on the console, as ``npe-train`` shows it (by default only in
            the run's ``<work_dir>/<timestamp>/<timestamp>.log``; Python's warnings there too).
        **options: ``keep_schedule`` (:func:`npe.apply_npe`), ``deterministic``, ``resume``, ``amp``,
            ``amp_dtype``, ``launcher``, ``world_size``, ``batch_per_process``, ``check_data_folders`` of
            :func:`build_train_config`.

    Returns:
        :class:`TrainInfo`: ``work_dir``, ``checkpoint``, ``iterations``, ``wall_time_s``, ...

    Raises:
        npe.errors.ConfigError: the config cannot be loaded or made an NPE config.
        npe.errors.DataError: a data folder is missing or empty.
    """
    check = Checker('npe.train', ConfigError)
    check.path('base_config', base_config)
    check.path('work_dir', work_dir, optional=True)
    check_npe_options('npe.train', num_pem=num_pem, pem_type=pem_type, scale_factor=scale_factor,
                      freeze_backbone=freeze_backbone, freeze_decode=freeze_decode, load_from=load_from,
                      protocol=protocol)
    if seed is not None:
        check.integer('seed', seed, minimum=0, maximum=2 ** 32 - 1)
    check.options('cfg_options', cfg_options)
    check.path('data_root', data_root, optional=True)
    check.keywords('options', options, _TRAIN_OPTIONS)
    check.flag('verbose', verbose)
    for name in ('keep_schedule', 'deterministic', 'resume', 'amp', 'check_data_folders'):
        if name in options:
            check.flag(name, options[name])
    if 'amp_dtype' in options:
        check.choice('amp_dtype', options['amp_dtype'], ('auto', 'float16', 'bfloat16'))
    if 'launcher' in options:
        check.choice("launcher", options["launcher"], LAUNCHERS)
    for name in ('world_size', 'batch_per_process'):
        check.integer(name, options.get(name), minimum=1, optional=True)
    cfg = build_train_config(os.fspath(base_config), work_dir=work_dir, num_pem=num_pem,
                             pem_type=pem_type, scale_factor=scale_factor, protocol=protocol,
                             load_from=load_from, freeze_backbone=freeze_backbone,
                             freeze_decode=freeze_decode, seed=seed, cfg_options=cfg_options,
                             kit_data_root=data_root, **options)
    return run_training(cfg, console=verbose)


#: ``npe.train``'s ``**options`` (passed on to :func:`build_train_config`).
_TRAIN_OPTIONS = ('keep_schedule', 'deterministic', 'resume', 'amp', 'amp_dtype', 'launcher', 'world_size',
                  'batch_per_process', 'check_data_folders')


if __name__ == '__main__':  # a torchrun process of train_launched()
    _launched_main(*sys.argv[1:4])
