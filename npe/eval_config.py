"""Which config, checkpoint and data an evaluation uses: a training run's test config, validated.

Which config: the one the training run itself used, never "the first .py" (docs/method.md section 5, row 7).
In order of precedence:

1. ``--config FILE`` (``config=`` in :func:`npe.evaluate`);
2. the file named in ``WORK_DIR/npe_train.json``, which ``npe-train`` writes when its Runner has
   dumped the config (``WORK_DIR/<config stem>.py``) - the run that started last in this work dir;
3. ``vis_data/config.py`` of the newest timestamped run folder ``WORK_DIR/YYYYmmdd_HHMMSS/`` (work
   dirs of MMSeg's own ``tools/train.py``);
4. the only ``*.py`` directly in ``WORK_DIR``; several of them is an error asking for ``--config``.

Which checkpoint: ``--checkpoint``, else the one named in ``WORK_DIR/last_checkpoint`` (the last one
the run saved), else the newest ``iter_*.pth``/``epoch_*.pth`` (:func:`npe.work_dir.latest_checkpoint`).
:mod:`npe.evaluation` then loads it with every key checked (:func:`npe.reference.load_weights`).

Work dirs of the reference code's ``tools/train.py`` (config importing ``npe.multi_head_wrapper``...,
checkpoints with its unused ``decode_head.conv_seg``) are translated (:mod:`npe.reference`), with a note.

Nothing here writes a file but :func:`test_parent`'s ``work_dirs/<config stem>`` (MMSeg's order).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from npe.config import check_data, leaf_datasets
from npe.constants import RUN_FILE
from npe.errors import ConfigError, RunError, arg
from npe.reference import is_reference_config, translate_config, wrap_plain_config
from npe.runtime import apply_runtime, check_launcher, resolve_dataset_folder
from npe.work_dir import checkpoint_choice_note, latest_checkpoint

_RUN_FOLDER = re.compile(r'^\d{8}_\d{6}$')
#: Metrics every evaluation reports (docs/method.md section 6), whatever the config asked for.
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
            raise RunError(f'{record} is damaged; name the config explicitly (config=, --config)') from None
        path = work_dir / name
        if not path.is_file():
            raise RunError(f'{record} names {name}, which is not in {work_dir}; name the config explicitly '
                           '(config=, --config)')
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
                        'is it a work dir of npe-train? Name the config explicitly otherwise (config=, --config)')
    raise RunError(f'{work_dir} holds several configs ({", ".join(p.name for p in candidates)}) and '
                    f'no {RUN_FILE}; choose one (config=, --config)')


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


def _test_split(cfg, split: str) -> None:
    """Test on ``images/<split>`` + ``annotations/<split>`` (e.g. the held-out training split); for
    ``'holdout'`` of an own dataset: the training config's ``npe_holdout`` (:mod:`npe.own_data`)."""
    held = cfg.get('npe_holdout')
    if split == 'holdout' and held:
        test = leaf_datasets(cfg.test_dataloader.dataset)[0][1]
        cfg.test_dataloader.dataset = dict(copy.deepcopy(held), data_root=test.get('data_root'),
                                           pipeline=copy.deepcopy(test.get('pipeline')))
        return
    for _, dataset in leaf_datasets(cfg.test_dataloader.dataset):
        dataset['data_prefix'] = dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}')


def _test_time_augmentation(cfg, config_path: Path) -> None:
    """The config's ``tta_pipeline`` as test pipeline and ``tta_model`` around the model; applied
    after ``cfg_options``, so ``tta_pipeline.*`` / ``tta_model.*`` overrides take effect."""
    if not cfg.get('tta_model') or not cfg.get('tta_pipeline'):
        raise ConfigError(f'{arg("tta")}: {config_path} has no tta_model/tta_pipeline; leave {arg("tta")} '
                          f'off or add them with {arg("cfg_options")}')
    cfg.test_dataloader.dataset.pipeline = copy.deepcopy(cfg.tta_pipeline)
    tta_model = copy.deepcopy(cfg.tta_model)
    if str(tta_model.get('type', '')).split('.')[-1] == 'SegTTAModel':
        tta_model.type = 'NPESweepTTAModel'  # merges each adjustment block apart (npe.sweep)
    tta_model.module = cfg.model
    cfg.model = tta_model


def test_parent(work_dir: str | Path | None, config: str | Path | None, checkpoint: str | Path | None) -> Path:
    """``work_dir``, or for MMSeg's order (config and checkpoint, no work dir) ``work_dirs/<config stem>``."""
    if work_dir is None:
        if config is None or checkpoint is None:
            raise RunError('no training run given: pass its work_dir, or both config and checkpoint')
        work_dir = Path('work_dirs') / Path(config).stem
        work_dir.mkdir(parents=True, exist_ok=True)
    return Path(work_dir)


def prepare_test_config(work_dir: str | Path, checkpoint: str | Path | None = None,
                        tta: bool = False, cfg_options: dict | None = None,
                        data_split: str | None = None, config: str | Path | None = None,
                        launcher: str = 'none', kit_data_root: str | Path | None = None):
    """The test config of a training run, validated; writes nothing.

    Returns ``(cfg, checkpoint_path)``. The config is the run's own (see the module docstring),
    with ``data_split`` (``'holdout'``...) as the test split, then ``cfg_options``, then for
    ``tta`` the config's ``tta_pipeline`` as test pipeline and ``tta_model`` around the model (so
    adjust TTA with ``tta_pipeline.*`` options); ``load_from`` = the checkpoint, training parts
    removed, the IoU metric made an ``NPEIoUMetric`` reporting mIoU and mDice. ``work_dir`` is
    still the training run's (the caller sets a fresh one).
    """
    from mmengine.config import Config

    check_launcher(launcher)
    work_dir = test_parent(work_dir, config, checkpoint)
    if not work_dir.is_dir():
        raise RunError(f'work dir {work_dir} does not exist; give the {arg("work_dir")} of a training run')
    config_path = Path(config) if config else find_run_config(work_dir)
    if not config_path.is_file():
        raise ConfigError(f'config {config_path} does not exist')
    choice_note = None
    if checkpoint is not None:
        ckpt = Path(checkpoint)
        if not ckpt.is_file():
            raise RunError(f'checkpoint {ckpt} does not exist')
    else:
        ckpt = latest_checkpoint(work_dir)
        choice_note = checkpoint_choice_note(work_dir, ckpt)
        if ckpt is None:
            raise RunError(f'no checkpoint in {work_dir} (no last_checkpoint, no iter_*.pth); train '
                           f'longer than one checkpoint interval or give {arg("checkpoint")}')
    from npe.checkpoint import unreadable_reason
    reason = unreadable_reason(ckpt)
    if reason:
        fix = ('give a readable one' if checkpoint is not None else
               f'training the work dir again with {arg("resume")} sets it aside and trains on from the '
               f'previous checkpoint; or give {arg("checkpoint")}')
        raise RunError(f'checkpoint {ckpt} is unreadable ({reason}); {fix}')
    try:
        cfg = Config.fromfile(str(config_path), import_custom_modules=False)
        notes = [translate_config(cfg, config_path)] if is_reference_config(cfg) else []
        notes += [choice_note] if choice_note else []
        imports = cfg.get('custom_imports')
        if imports:
            from mmengine.utils import import_modules_from_strings

            import_modules_from_strings(**imports)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f'config {config_path} cannot be loaded: {type(exc).__name__}: {exc}') from None

    if ((cfg.get('model') or {}).get('decode_head') or {}).get('type') != 'MultiHeadWrapper':
        notes.append(wrap_plain_config(cfg, config_path))   # a plain MMSeg model: its head alone, 0 PEMs
    if not cfg.get('test_dataloader') or not cfg.get('test_cfg'):
        raise ConfigError(f'{config_path} has no test_dataloader/test_cfg to evaluate with')

    # The data moved (another machine, another mount point) only when a kit data root is given.
    apply_runtime(cfg, launcher=launcher, cfg_options=cfg_options, loaders=('test_dataloader',),
                  folder=resolve_dataset_folder(cfg, kit_data_root, moved_only=True),
                  before_options=(lambda c: _test_split(c, data_split)) if data_split else None,
                  after_options=(lambda c: _test_time_augmentation(c, config_path)) if tta else None)
    check_data(cfg, ('test_dataloader',))

    cfg.test_evaluator = _iou_evaluator(cfg.get('test_evaluator'))
    imports = list((cfg.get('custom_imports') or {}).get('imports', []))
    cfg.custom_imports = dict(imports=imports + [m for m in ('npe.metrics', 'npe.sweep') if m not in imports],
                              allow_failed_imports=False)
    # Evaluation only: no training/validation parts (their data need not exist any more).
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler',
                'val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = None
    cfg.custom_hooks = [h for h in (cfg.get('custom_hooks') or [])
                        if str(h.get('type', '')).split('.')[-1] not in _TRAIN_ONLY_HOOKS]
    ckpt = ckpt.resolve()
    cfg.npe_notes = notes
    cfg.load_from = str(ckpt)
    return cfg, ckpt
