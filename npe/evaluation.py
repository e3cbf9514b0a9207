"""Evaluation: a training run's checkpoint at one or several scale factors s (``npe.evaluate``).

Which config, checkpoint and test data: :mod:`npe.eval_config` (the run's own config, its last
checkpoint). The checkpoint is loaded with every key checked (:func:`npe.reference.load_weights`):
a checkpoint that does not fit the model is an error.

Which s: the trained value stored in the config unless ``--scale-factor`` is given (docs/method.md
section 5, row 6); several values are evaluated in ONE pass over the data (:mod:`npe.sweep`: every s's
adjusted logits formed per window and argmaxed apart, with the same confusion counts as one evaluation
per s); ``per_s=True`` (``npe-test --per-s``) runs one full evaluation per s instead, for checking.
``'auto'``: the held-out choice of :mod:`npe.auto_scale`.

Nothing in the training run is modified (row 10): the test Runner works in a fresh
``WORK_DIR/test_<timestamp>/`` (its logs and a copy of the test config go there).

Library use: :func:`evaluate` returns the result dicts; :func:`write_metrics` writes them as JSON.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

from npe.arguments import check_evaluate_arguments
from npe.config import register
from npe.errors import ConfigError, RunError
# The test config has its own module; these names stay importable from here (npe-test, the API's users).
from npe.eval_config import find_run_config, prepare_test_config, test_parent
from npe.files import write_json_atomic
from npe.logs import RunnerLog
from npe.options import DEFAULTS, EVALUATED_SCALE
from npe.reference import load_weights

__all__ = ['evaluate', 'write_metrics', 'format_table', 'find_run_config', 'prepare_test_config', 'test_parent']

log = logging.getLogger(__name__)


def _decode_head(model):
    """The wrapper head inside DDP / TTA wrappers."""
    while hasattr(model, 'module'):
        model = model.module
    return model.decode_head


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
