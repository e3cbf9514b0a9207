"""Evaluation: a training run's checkpoint at one or several scale factors s (``npe.evaluate``).

Which config: the one the training run itself used, never "the first .py" (NPE.md section 5, row 7).
In order of precedence:

1. ``--config FILE`` (``config=`` in :func:`evaluate`);
2. the file named in ``WORK_DIR/npe_train.json``, which ``npe-train`` writes when its Runner has
   dumped the config (``WORK_DIR/<config stem>.py``) - the run that started last in this work dir;
3. ``vis_data/config.py`` of the newest timestamped run folder ``WORK_DIR/YYYYmmdd_HHMMSS/`` (work
   dirs of MMSeg's own ``tools/train.py``);
4. the only ``*.py`` directly in ``WORK_DIR``; several of them is an error asking for ``--config``.

Which checkpoint: ``--checkpoint``, else the one named in ``WORK_DIR/last_checkpoint`` (the last one
the run saved), else the newest ``iter_*.pth``/``epoch_*.pth``.

Which s: the trained value stored in the config unless ``--scale-factor`` is given (row 6); several
values evaluate the same checkpoint once per s, with one model (s only acts at inference).

Nothing in the training run is modified (row 10): the test Runner works in a fresh
``WORK_DIR/test_<timestamp>/`` (its logs and a copy of the test config go there).

Library use: :func:`evaluate` returns the result dicts; :func:`write_metrics` writes them as JSON
(``npe-test --out FILE``).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import re
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

from npe.config import (check_data, check_schedule, fix_dataloaders, kit_dataset_folder, leaf_datasets,
                        merge_cfg_options, own_runner_instances, register, set_data_root)
from npe.constants import LAUNCHERS, RUN_FILE
from npe.errors import ConfigError, RunError
from npe.files import write_json_atomic
from npe.training import latest_checkpoint

_RUN_FOLDER = re.compile(r'^\d{8}_\d{6}$')
#: Metrics every evaluation reports (NPE.md section 6), whatever the config asked for.
REQUIRED_IOU_METRICS = ('mIoU', 'mDice')
_TRAIN_ONLY_HOOKS = ('NPEFreezeHook', 'NPECheckpointRemapHook')


def find_run_config(work_dir: str | Path) -> Path:
    """The config the training run in ``work_dir`` used (rules 2-4 of the module docstring)."""
    work_dir = Path(work_dir)
    record = work_dir / RUN_FILE
    if record.is_file():
        try:
            name = json.loads(record.read_text())['config']
        except (ValueError, KeyError, TypeError):
            raise RunError(f'{record} is damaged; give the config with --config') from None
        path = work_dir / name
        if not path.is_file():
            raise RunError(f'{record} names {name}, which is not in {work_dir}; give --config')
        return path
    runs = sorted(p for p in work_dir.iterdir() if p.is_dir() and _RUN_FOLDER.match(p.name)
                  and (p / 'vis_data' / 'config.py').is_file())
    if runs:
        return runs[-1] / 'vis_data' / 'config.py'
    candidates = sorted(work_dir.glob('*.py'))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise RunError(f'no training config in {work_dir} (no {RUN_FILE}, no run folder, no .py); '
                        'is it a work dir of npe-train? Give --config otherwise')
    raise RunError(f'{work_dir} holds several configs ({", ".join(p.name for p in candidates)}) and '
                    f'no {RUN_FILE}; choose one with --config')


def _decode_head(model):
    """The wrapper head inside DDP / TTA wrappers."""
    while hasattr(model, 'module'):
        model = model.module
    return model.decode_head


def _iou_evaluator(evaluator):
    """``test_evaluator`` with every IoUMetric made an NPEIoUMetric reporting mIoU and mDice."""
    def convert(metric: dict) -> dict:
        metric = dict(metric)
        metric['type'] = 'NPEIoUMetric'
        asked = list(metric.get('iou_metrics') or ['mIoU'])
        metric['iou_metrics'] = asked + [m for m in REQUIRED_IOU_METRICS if m not in asked]
        return metric

    def is_iou(metric) -> bool:
        return isinstance(metric, dict) and str(metric.get('type', '')).split('.')[-1] in (
            'IoUMetric', 'NPEIoUMetric')

    metrics = list(evaluator) if isinstance(evaluator, (list, tuple)) else \
        ([evaluator] if evaluator else [])
    if not any(is_iou(m) for m in metrics):
        metrics.append(dict(type='IoUMetric'))
    metrics = [convert(m) if is_iou(m) else m for m in metrics]
    return metrics[0] if len(metrics) == 1 else metrics


#: Keys a checkpoint may hold that the model does not use: the reference wrapper keeps the inherited
#: classifier of its main head's class, which it never uses (NPE.md section 5).
_UNUSED_KEYS = ('decode_head.conv_seg.',)


def check_model_keys(model, checkpoint: Path) -> None:
    """The checkpoint must hold exactly the model's weights (another number of PEMs, another head:
    :class:`RunError` naming the keys), the known unused classifier of reference checkpoints aside."""
    import torch

    while hasattr(model, 'module'):
        model = model.module
    import zipfile

    state = torch.load(checkpoint, map_location='cpu', weights_only=True,
                       mmap=zipfile.is_zipfile(checkpoint))
    state = state.get('state_dict', state) if isinstance(state, dict) else {}
    have = {k[len('module.'):] if k.startswith('module.') else k for k in state}
    want = set(model.state_dict())
    missing = sorted(want - have)
    unexpected = sorted(k for k in have - want if not k.startswith(_UNUSED_KEYS))
    if missing or unexpected:
        def few(keys):
            return ', '.join(keys[:3]) + (f' and {len(keys) - 3} more' if len(keys) > 3 else '')
        parts = ([f'missing {few(missing)}'] if missing else []) + \
                ([f'unexpected {few(unexpected)}'] if unexpected else [])
        raise RunError(f'checkpoint {checkpoint} does not fit the model of the config '
                       f'({"; ".join(parts)}); was the run trained with other options? Evaluate it '
                       'with the config it was trained with (--config)')


def _number(value: Any) -> float | None:
    """A metric as a plain float; MMSeg's percentages are float32, so 4 decimals are all there is."""
    value = float(value)
    return None if math.isnan(value) else round(value, 4)


def _fresh_dir(parent: Path, launcher: str) -> Path:
    """``parent/test_<timestamp>`` that does not exist yet (same name on every rank under DDP)."""
    stamp = time.strftime('%Y%m%d_%H%M%S')
    if launcher != 'none':
        from mmengine.dist import broadcast_object_list
        box = [stamp]
        broadcast_object_list(box)  # rank 0's clock names the folder for all ranks
        return parent / f'test_{box[0]}'
    path, n = parent / f'test_{stamp}', 1
    while path.exists():
        n += 1
        path = parent / f'test_{stamp}_{n}'
    return path


def prepare_test_config(work_dir: str | Path, checkpoint: str | Path | None = None,
                        tta: bool = False, cfg_options: dict | None = None,
                        data_split: str | None = None, config: str | Path | None = None,
                        launcher: str = 'none', data_root: str | Path | None = None):
    """The test config of a training run, validated; writes nothing.

    Returns ``(cfg, checkpoint_path)``. The config is the run's own (see the module docstring),
    with ``data_split`` (``'holdout'``...) as the test split, then ``cfg_options``, then for
    ``tta`` the config's ``tta_pipeline`` as test pipeline and ``tta_model`` around the model (so
    adjust TTA with ``tta_pipeline.*`` options); ``load_from`` = the checkpoint, training parts
    removed, the IoU metric made an ``NPEIoUMetric`` reporting mIoU and mDice. ``work_dir`` is
    still the training run's (the caller sets a fresh one).
    """
    from mmengine.config import Config

    if launcher not in LAUNCHERS:
        raise ConfigError(f'unknown launcher {launcher!r}; choose one of {", ".join(LAUNCHERS)}')
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        raise RunError(f'work dir {work_dir} does not exist; give the --work-dir of a training run')
    config_path = Path(config) if config else find_run_config(work_dir)
    if not config_path.is_file():
        raise ConfigError(f'config {config_path} does not exist')
    if checkpoint is not None:
        ckpt = Path(checkpoint)
        if not ckpt.is_file():
            raise RunError(f'checkpoint {ckpt} does not exist')
    else:
        ckpt = latest_checkpoint(work_dir)
        if ckpt is None:
            raise RunError(f'no checkpoint in {work_dir} (no last_checkpoint, no iter_*.pth); train '
                            'longer than one checkpoint interval or give --checkpoint')
    from npe.checkpoint import unreadable_reason
    reason = unreadable_reason(ckpt)
    if reason:
        fix = ('give a readable one' if checkpoint is not None else
               'npe-train --resume on the work dir sets it aside and trains again from the previous '
               'checkpoint; or give --checkpoint')
        raise RunError(f'checkpoint {ckpt} is unreadable ({reason}); {fix}')
    try:
        cfg = Config.fromfile(str(config_path))
    except Exception as exc:
        raise ConfigError(f'config {config_path} cannot be loaded: {type(exc).__name__}: {exc}') from None

    head = (cfg.get('model') or {}).get('decode_head') or {}
    if head.get('type') != 'MultiHeadWrapper':
        raise ConfigError(f'{config_path} is not an NPE config (decode_head is {head.get("type")!r}); '
                        'npe-test evaluates runs trained with npe-train')
    if not cfg.get('test_dataloader') or not cfg.get('test_cfg'):
        raise ConfigError(f'{config_path} has no test_dataloader/test_cfg to evaluate with')
    if data_root is not None:  # the data moved (another machine, another mount point)
        set_data_root(cfg, kit_dataset_folder(cfg, data_root))
    if data_split:
        for _, dataset in leaf_datasets(cfg.test_dataloader.dataset):
            dataset['data_prefix'] = dict(img_path=f'images/{data_split}',
                                          seg_map_path=f'annotations/{data_split}')
    merge_cfg_options(cfg, cfg_options)
    check_schedule(cfg)
    if tta:  # after cfg_options, so tta_pipeline.* / tta_model.* overrides take effect
        if not cfg.get('tta_model') or not cfg.get('tta_pipeline'):
            raise ConfigError(f'--tta: {config_path} has no tta_model/tta_pipeline; drop --tta or add '
                            'them with --cfg-options')
        cfg.test_dataloader.dataset.pipeline = copy.deepcopy(cfg.tta_pipeline)
        tta_model = copy.deepcopy(cfg.tta_model)
        tta_model.module = cfg.model
        cfg.model = tta_model
    check_data(cfg, ('test_dataloader',))
    fix_dataloaders(cfg, ('test_dataloader',))

    cfg.test_evaluator = _iou_evaluator(cfg.get('test_evaluator'))
    own_runner_instances(cfg)
    imports = list((cfg.get('custom_imports') or {}).get('imports', []))
    cfg.custom_imports = dict(imports=imports + [m for m in ('npe.metrics',) if m not in imports],
                              allow_failed_imports=False)
    # Evaluation only: no training/validation parts (their data need not exist any more).
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler',
                'val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = None
    cfg.custom_hooks = [h for h in (cfg.get('custom_hooks') or [])
                        if str(h.get('type', '')).split('.')[-1] not in _TRAIN_ONLY_HOOKS]
    ckpt = ckpt.resolve()
    cfg.load_from = str(ckpt)
    cfg.resume = False
    cfg.launcher = launcher
    return cfg, ckpt


def evaluate(work_dir: str | Path,
             checkpoint: str | Path | None = None,
             scale_factors: Sequence[float | None] = (None,),
             tta: bool = False,
             cfg_options: dict | None = None,
             record_prior: bool = True,
             log_prior: Sequence[float] | None = None,
             data_split: str | None = None,
             config: str | Path | None = None,
             out_dir: str | Path | None = None,
             launcher: str = 'none',
             data_root: str | Path | None = None) -> list[dict[str, Any]]:
    """Evaluate a training run's checkpoint once per scale factor; return one dict per s.

    Args:
        work_dir: the training run's work dir (its files are only read).
        checkpoint: default: the run's last checkpoint.
        scale_factors: s values; ``None`` = the trained value from the config.
        tta: test-time augmentation with the config's ``tta_model`` / ``tta_pipeline``.
        cfg_options: config overrides for the test (e.g. another ``test_dataloader`` data root).
        record_prior: record the learned prior (per-class mean of the centred PEM output).
        log_prior: per-class log prior for counted-prior logit adjustment (``z - log_prior / s``),
            e.g. on a baseline (``num_pem=0``).
        data_split: evaluate ``images/<split>`` + ``annotations/<split>`` (e.g. ``'holdout'``).
        config: the config to use instead of the run's own.
        out_dir: the test Runner's work dir (default: a fresh ``<work_dir>/test_<timestamp>/``).
        launcher: ``none`` | ``pytorch`` | ``slurm``.
        data_root: read the test data from this kit data root instead of where the run trained.

    Returns:
        ``[{"scale_factor": float, "metrics": {"aAcc", "mIoU", "mAcc", "mDice": float (percent)},
        "per_class": {"classes": [str], "IoU": [float|None], "Acc": [...], "Dice": [...]},
        "learned_prior": [float] | None (None without PEMs or with record_prior=False),
        "checkpoint": str, "config": str, "protocol": str, "npe": dict (the run's NPE options),
        "split": str | None, "tta": bool,
        "log_prior": [float] | None, "num_images": int, "wall_time_s": float}, ...]`` in the order
        of ``scale_factors``. Under DDP the per-class numbers and the prior are those of rank 0.

    Raises:
        npe.errors.RunError: no such work dir, config or checkpoint.
        npe.errors.ConfigError: the config is not an NPE config, or a scale factor / option is bad.
        npe.errors.DataError: the test data folder is missing or empty.
    """
    scale_values: list[float | None] = []
    for s in scale_factors:
        if s is not None:
            try:
                s = float(s)
            except (TypeError, ValueError):
                raise ConfigError(f'scale factor {s!r} is not a number') from None
            if not s > 0 or math.isinf(s):
                raise ConfigError(f'scale factor must be a finite number > 0, got {s}')
        scale_values.append(s)
    if not scale_values:
        raise ConfigError('no scale factor to evaluate')

    cfg, ckpt = prepare_test_config(work_dir, checkpoint=checkpoint, tta=tta,
                                    cfg_options=cfg_options, data_split=data_split, config=config,
                                    launcher=launcher, data_root=data_root)
    head_cfg = (cfg.model.module if tta else cfg.model).decode_head
    trained_s = float(head_cfg.get('scale_factor', 1.0))
    num_classes = int(head_cfg.main_head.num_classes)
    if log_prior is not None:
        log_prior = [float(v) for v in log_prior]
        if len(log_prior) != num_classes or not all(math.isfinite(v) for v in log_prior):
            raise ConfigError(f'log_prior needs {num_classes} finite values (one per class), got '
                            f'{len(log_prior)}')
    config_used = Path(cfg.filename).resolve()  # the file prepare_test_config() loaded
    npe_cfg = cfg.get('npe')
    npe_cfg = npe_cfg.to_dict() if hasattr(npe_cfg, 'to_dict') else dict(npe_cfg or {})

    import torch

    from npe.checkpoint import allow_mmengine_checkpoints

    register()
    import npe.metrics  # noqa: F401  (registers NPEIoUMetric)
    allow_mmengine_checkpoints()
    from mmengine.dist import init_dist, is_distributed
    from mmengine.runner import Runner

    if launcher != 'none' and not is_distributed():
        init_dist(launcher, **(cfg.get('env_cfg') or {}).get('dist_cfg', {}))
    cfg.work_dir = str(Path(out_dir).resolve() if out_dir else
                       _fresh_dir(Path(work_dir).resolve(), launcher))
    # A name of its own: MMEngine shares loggers/visualizers by experiment name, and the training
    # run's name (<stem>_<timestamp>) may still be alive in this process.
    cfg.experiment_name = f'npe_test_{uuid.uuid4().hex[:8]}'
    import contextlib
    import io
    import sys

    building = io.StringIO()  # the stack's warnings; shown only once the checkpoint fits the model
    with contextlib.redirect_stderr(building):
        runner = Runner.from_cfg(cfg)
    try:
        check_model_keys(runner.model, ckpt)
    except RunError:
        if out_dir is None:  # the fresh test_<time> folder the Runner just made: nothing left behind
            import shutil
            shutil.rmtree(cfg.work_dir, ignore_errors=True)
        raise
    sys.stderr.write(building.getvalue())
    head = _decode_head(runner.model)
    if log_prior is not None:
        device = next(head.parameters()).device
        head.log_prior = torch.tensor(log_prior, dtype=torch.float32, device=device)

    results = []
    for s in scale_values:
        s_value = trained_s if s is None else s
        head.scale_factor = s_value
        if record_prior:
            head.start_prior_recording()
        start = time.perf_counter()
        metrics = runner.test()
        wall = time.perf_counter() - start
        prior = head.stop_prior_recording() if record_prior else None
        per_class = None
        for metric in runner.test_evaluator.metrics:
            if getattr(metric, 'last_per_class', None) is not None:
                per_class = metric.last_per_class
        results.append(dict(
            scale_factor=s_value,
            metrics={k: _number(v) for k, v in metrics.items() if isinstance(v, (int, float))
                     or hasattr(v, '__float__')},
            per_class=per_class,
            learned_prior=prior,
            checkpoint=str(ckpt),
            config=str(config_used),
            protocol=npe_cfg.get('protocol'),
            npe=npe_cfg,
            split=data_split,
            tta=bool(tta),
            log_prior=log_prior,
            num_images=len(runner.test_dataloader.dataset),
            wall_time_s=wall,
        ))
    return results




def write_metrics(path: str | Path, work_dir: str | Path, results: Sequence[dict], tta: bool = False) -> Path:
    """Write :func:`evaluate`'s results as one JSON file (``npe-test --out``); return its path."""
    first = results[0]
    payload = dict(work_dir=str(Path(work_dir).resolve()),
                   checkpoint=first['checkpoint'], config=first['config'],
                   protocol=first['protocol'], npe=first['npe'], tta=bool(tta),
                   created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'),
                   results=[{k: r[k] for k in ('scale_factor', 'metrics', 'per_class',
                                                'learned_prior', 'num_images', 'wall_time_s')}
                            for r in results])
    return write_json_atomic(path, payload)


def format_table(results: Sequence[dict]) -> str:
    """One row per s: aAcc, mIoU, mAcc, mDice (percent)."""
    cols = ('aAcc', 'mIoU', 'mAcc', 'mDice')
    lines = [f'{"s":>8} ' + ' '.join(f'{c:>7}' for c in cols)]
    for r in results:
        cells = []
        for c in cols:
            v = r['metrics'].get(c)
            cells.append(f'{v:7.2f}' if isinstance(v, (int, float)) else f'{"-":>7}')
        lines.append(f'{r["scale_factor"]:>8g} ' + ' '.join(cells))
    return '\n'.join(lines)
