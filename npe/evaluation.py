"""Evaluation: a training run's checkpoint at one or several scale factors s (``npe.evaluate``).

Which config: the one the training run itself used, never "the first .py" (docs/method.md section 5, row 7).
In order of precedence:

1. ``--config FILE`` (``config=`` in :func:`evaluate`);
2. the file named in ``WORK_DIR/npe_train.json``, which ``npe-train`` writes when its Runner has
   dumped the config (``WORK_DIR/<config stem>.py``) - the run that started last in this work dir;
3. ``vis_data/config.py`` of the newest timestamped run folder ``WORK_DIR/YYYYmmdd_HHMMSS/`` (work
   dirs of MMSeg's own ``tools/train.py``);
4. the only ``*.py`` directly in ``WORK_DIR``; several of them is an error asking for ``--config``.

Which checkpoint: ``--checkpoint``, else the one named in ``WORK_DIR/last_checkpoint`` (the last one
the run saved), else the newest ``iter_*.pth``/``epoch_*.pth``. It is loaded with every key checked
(:func:`npe.reference.load_weights`): a checkpoint that does not fit the model is an error.

Work dirs of the reference code's ``tools/train.py`` (config importing ``npe.multi_head_wrapper``...,
checkpoints with its unused ``decode_head.conv_seg``) are translated (:mod:`npe.reference`), with a note.

Which s: the trained value stored in the config unless ``--scale-factor`` is given (row 6); several
values are evaluated in ONE pass over the data (:mod:`npe.sweep`: every s's adjusted logits formed per
window and argmaxed apart, with the same confusion counts as one evaluation per s); ``per_s=True``
(``npe-test --per-s``) runs one full evaluation per s instead, for checking.

Nothing in the training run is modified (row 10): the test Runner works in a fresh
``WORK_DIR/test_<timestamp>/`` (its logs and a copy of the test config go there).

Library use: :func:`evaluate` returns the result dicts; :func:`write_metrics` writes them as JSON.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import json
import logging
import math
import re
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

from npe.arguments import check_evaluate_arguments
from npe.config import check_data, leaf_datasets, register
from npe.constants import RUN_FILE
from npe.errors import ConfigError, RunError
from npe.files import write_json_atomic
from npe.logs import RunnerLog
from npe.options import DEFAULTS, EVALUATED_SCALE
from npe.reference import is_reference_config, load_weights, translate_config, wrap_plain_config
from npe.runtime import apply_runtime, check_launcher, resolve_dataset_folder
from npe.work_dir import checkpoint_choice_note, latest_checkpoint

log = logging.getLogger(__name__)

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
        raise ConfigError(f'--tta: {config_path} has no tta_model/tta_pipeline; drop --tta or add '
                          'them with --cfg-options')
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
        raise RunError(f'work dir {work_dir} does not exist; give the --work-dir of a training run')
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
                            'longer than one checkpoint interval or give --checkpoint')
    from npe.checkpoint import unreadable_reason
    reason = unreadable_reason(ckpt)
    if reason:
        fix = ('give a readable one' if checkpoint is not None else
               'npe-train --resume on the work dir sets it aside and trains again from the previous '
               'checkpoint; or give --checkpoint')
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


def _requests(scale_factors, adjustments, log_prior) -> list[tuple[str, float | None]]:
    """``(kind, s)`` pairs asked for; ``s = None`` = the trained value; ``inf`` = unadjusted."""
    if adjustments is None:
        kind = 'counted' if log_prior is not None else 'npe'
        adjustments = [(kind, s) for s in scale_factors]
    out: list[tuple[str, float | None]] = []
    for kind, s in adjustments:
        if kind not in ('npe', 'counted', 'none'):
            raise ConfigError(f"unknown adjustment {kind!r}; choose 'npe', 'counted' or 'none'")
        if kind == 'counted' and log_prior is None:
            raise ConfigError('a counted-prior adjustment needs log_prior (one value per class)')
        if s is not None:
            try:
                s = float(s)
            except (TypeError, ValueError):
                raise ConfigError(f'scale factor {s!r} is not a number') from None
            EVALUATED_SCALE.check(s)
        out.append((kind, s))
    if not out:
        raise ConfigError('no scale factor to evaluate')
    return out


def evaluate(work_dir: str | Path | None,
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
             data_root: str | Path | None = None,
             adjustments: Sequence[tuple[str, float | None]] | None = None,
             per_s: bool = False,
             verbose: bool = False,
             quiet: bool | None = None,
             keep_predictions: Sequence[str] = (),
             log_file: str | Path | None = None,
             auto_candidates: Sequence[float] | None = None, auto_metric: str | None = None) -> list[dict[str, Any]]:
    """Evaluate a training run's checkpoint at every scale factor in one pass; one dict per s.

    Args:
        work_dir: the training run's work dir (its files are only read); None with ``config`` and
            ``checkpoint`` (MMSeg's order): the test folders go under ``work_dirs/<config stem>/``.
        checkpoint: default: the run's last checkpoint.
        scale_factors: s values; ``None`` = the trained value from the config; ``inf`` = no
            adjustment (the main head alone); ``'auto'`` = the best of ``auto_candidates`` (default
            0.5 ... 4) by ``auto_metric`` (default mIoU) on the held-out split (:mod:`npe.auto_scale`;
            the row then has ``"auto"``: metric, split, candidates' scores).
        tta: test-time augmentation with the config's ``tta_model`` / ``tta_pipeline``.
        cfg_options: config overrides for the test (e.g. another ``test_dataloader`` data root).
        record_prior: record the learned prior (per-class mean of the centred PEM output).
        log_prior: per-class log prior: with it, ``scale_factors`` are counted-prior logit
            adjustments of the main head (``z - log_prior / s``, PEMs unused), e.g. of a baseline.
        data_split: evaluate ``images/<split>`` + ``annotations/<split>`` (e.g. ``'holdout'``).
        config: the config to use instead of the run's own.
        out_dir: the test Runner's work dir (default: a fresh ``<work_dir>/test_<timestamp>/``).
        launcher: ``none`` | ``pytorch`` | ``slurm``.
        data_root: read the test data from this kit data root instead of where the run trained.
        adjustments: instead of ``scale_factors``: ``(kind, s)`` pairs, kind ``'npe'`` (NPE-LA),
            ``'counted'`` (needs ``log_prior``) or ``'none'``, all evaluated in the same pass.
        per_s: one full evaluation per s (the old way, for checking) instead of one pass for all
            (:mod:`npe.sweep`; identical confusion counts, so identical metrics).
        keep_predictions: names of images (file name up to the first dot) whose predicted label
            maps each row keeps as ``"predictions": {name: uint8 array}`` (examples figure).
        verbose: MMEngine's console output (environment, config, progress) and Python's warnings
            on the console, as MMEngine prints them; by default (False) they go to
            ``<test work dir>/npe-test.log`` only (named in each row's ``log_file``).
        quiet: the older name of the same choice: ``quiet=False`` is ``verbose=True``.
        log_file: MMEngine's log appended to this file instead (``npe-repro`` keeps one per run).

    Returns:
        ``[{"scale_factor": float, "adjustment": str, "metrics": {"aAcc", "mIoU", "mAcc", "mDice":
        float (percent)}, "per_class": {"classes": [str], "IoU": [float|None], "Acc": [...],
        "Dice": [...]}, "learned_prior": [float] | None (None without PEMs or with
        record_prior=False), "checkpoint": str, "config": str, "protocol": str, "npe": dict (the
        run's NPE options), "split": str | None, "tta": bool, "log_prior": [float] | None,
        "num_images": int, "wall_time_s": float (of the pass that produced the row), "one_pass":
        bool, "notes": [str] (a reference-code config translated, its unused classifier ignored)},
        ...]`` in the order asked. Under DDP the per-class numbers and the prior are those
        of rank 0.

    Raises:
        npe.errors.RunError: no such work dir, config or checkpoint.
        npe.errors.ConfigError: the config is not an NPE config, or a scale factor / option is bad.
        npe.errors.DataError: the test data folder is missing or empty.
    """
    check_evaluate_arguments(locals())
    quiet = not verbose if quiet is None else quiet
    from npe import auto_scale
    if auto_scale.asks_auto(scale_factors, adjustments):
        given = {k: v for k, v in locals().items() if k not in ('auto_candidates', 'auto_metric', 'auto_scale')}
        return auto_scale.evaluate_with_auto(evaluate, given, auto_candidates, auto_metric)
    requests = _requests(scale_factors, adjustments, log_prior)
    work_dir = test_parent(work_dir, config, checkpoint)
    cfg, ckpt = prepare_test_config(work_dir, checkpoint=checkpoint, tta=tta,
                                    cfg_options=cfg_options, data_split=data_split, config=config,
                                    launcher=launcher, kit_data_root=data_root)
    head_cfg = (cfg.model.module if tta else cfg.model).decode_head
    trained_s = float(head_cfg.get('scale_factor', DEFAULTS.scale_factor))
    num_classes = int(head_cfg.main_head.num_classes)
    if log_prior is not None:
        log_prior = [float(v) for v in log_prior]
        if len(log_prior) != num_classes or not all(math.isfinite(v) for v in log_prior):
            raise ConfigError(f'log_prior needs {num_classes} finite values (one per class), got '
                            f'{len(log_prior)}')
    blocks = list(dict.fromkeys((kind, trained_s if s is None else s) for kind, s in requests))
    config_used = Path(cfg.filename).resolve()  # the file prepare_test_config() loaded
    npe_cfg = cfg.get('npe')
    npe_cfg = npe_cfg.to_dict() if hasattr(npe_cfg, 'to_dict') else dict(npe_cfg or {})

    import torch

    from npe.checkpoint import allow_mmengine_checkpoints

    register()
    import npe.metrics  # noqa: F401  (registers NPEIoUMetric)
    from npe.sweep import blocks_installed, iou_metrics
    allow_mmengine_checkpoints()
    from mmengine.dist import broadcast_object_list, is_distributed

    if launcher != 'none':
        from npe.launch import init_distributed
        init_distributed(launcher, command='npe-test',
                         dist_cfg=(cfg.get('env_cfg') or {}).get('dist_cfg'))
    cfg.work_dir = str(Path(out_dir).resolve() if out_dir else
                       _fresh_dir(Path(work_dir).resolve(), launcher))
    # A name of its own: MMEngine shares loggers/visualizers by experiment name, and the training
    # run's name (<stem>_<timestamp>) may still be alive in this process.
    cfg.experiment_name = f'npe_test_{uuid.uuid4().hex[:8]}'
    if log_file is None and quiet:
        log_file = Path(cfg.work_dir) / 'npe-test.log'
    notes = list(cfg.pop('npe_notes', None) or [])
    cfg.load_from = None  # loaded below with every key checked (MMEngine's loading is not strict)
    # quiet: MMEngine's log in npe-test.log only (warnings too), nothing on the console
    run_log = RunnerLog(log_file, console=not quiet)
    with contextlib.closing(run_log), run_log.python_warnings():
        runner = run_log.build(cfg)
        iou_metrics(runner)  # builds the test loop now, so its messages go to the log as well
        try:
            notes += load_weights(runner.model, ckpt)
        except RunError:
            if out_dir is None:  # the fresh test_<time> folder the Runner just made: nothing left behind
                import shutil
                shutil.rmtree(cfg.work_dir, ignore_errors=True)
            raise
        for note in notes:   # DEBUG: each row carries them and npe-test prints them, once
            log.debug('%s', note)
        head = _decode_head(runner.model)
        if log_prior is not None:
            device = next(head.parameters()).device
            head.counted_prior = torch.tensor(log_prior, dtype=torch.float32, device=device)

        def one_pass(pass_blocks) -> tuple[list[tuple[dict, dict | None, dict]], list | None, float]:
            for metric in iou_metrics(runner):
                metric.keep_images, metric.kept = set(keep_predictions), {}
            if record_prior:
                head.start_prior_recording()
            start = time.perf_counter()
            with blocks_installed(runner, head, pass_blocks):
                summary = runner.test()
            wall = time.perf_counter() - start
            prior = head.stop_prior_recording() if record_prior else None
            metrics = iou_metrics(runner)
            kept = next((m.kept for m in metrics if m.kept), {})
            if len(pass_blocks) == 1:
                per_class = next((m.last_per_class for m in metrics if m.last_per_class is not None), None)
                found = [(summary, per_class)]
            else:
                box = [next((m.last_sweep for m in metrics if m.last_sweep is not None), None)]
                if is_distributed():
                    broadcast_object_list(box)
                found = box[0]
            found = [(a, b, {name: maps[k] for name, maps in kept.items()}) for k, (a, b) in enumerate(found)]
            return found, prior, wall

        by_block: dict[tuple[str, float], tuple] = {}
        if per_s or len(blocks) == 1:
            for block in blocks:
                found, prior, wall = one_pass([block])
                by_block[block] = (found[0], prior, wall, False)
        else:
            found, prior, wall = one_pass(blocks)
            for block, item in zip(blocks, found):
                by_block[block] = (item, prior, wall, True)

        results = []
        for kind, s in requests:
            s_value = trained_s if s is None else s
            (summary, per_class, predictions), prior, wall, shared = by_block[(kind, s_value)]
            results.append(dict(
                scale_factor=s_value,
                adjustment=kind,
                metrics={k: _number(v) for k, v in summary.items() if isinstance(v, (int, float))
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
                one_pass=shared,
                log_file=str(log_file) if log_file else None,
                notes=notes,
                predictions=predictions,
            ))
        return results


def write_metrics(path: str | Path, work_dir: str | Path, results: Sequence[dict], tta: bool = False) -> Path:
    """Write :func:`evaluate`'s results as one JSON file (``npe-test --out``); return its path."""
    first = results[0]
    payload = dict(work_dir=str(Path(work_dir).resolve()),
                   checkpoint=first['checkpoint'], config=first['config'],
                   protocol=first['protocol'], npe=first['npe'], tta=bool(tta),
                   created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'),
                   results=[{k: r.get(k) for k in ('scale_factor', 'adjustment', 'auto', 'metrics', 'per_class',
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
