"""Run a recipe: data -> training (once per distinct configuration and seed) -> evaluation at every
scale factor -> one result file per (variant, seed, s) -> tables and figures.

Reads top to bottom: :func:`plan_runs`, :func:`describe_plan`, :func:`prepare_inputs`,
:func:`job_train_config`, :func:`train_job`, :func:`evaluate_job`, and :func:`run_recipe` tying them
together (``npe.run_recipe``); training and evaluation are :mod:`npe.training` and
:mod:`npe.evaluation`, result files :mod:`npe.results`. Finished runs are skipped; an interrupted
training resumes from its last checkpoint (MMEngine's own resume).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from npe import datasets, examples, paths, provenance
from npe.constants import AUTO, COUNTED_LA, MAIN_ONLY, TRAIN_MARKER
from npe.driver_options import DriverOptions
from npe.errors import RecipeError, UserError
from npe.files import clean_stale_temps, console_to, write_json_atomic
from npe.recipe_inputs import counted_log_prior, prepare_inputs
from npe.preflight import check_run_outputs
from npe.recipes import Recipe, Variant, load_recipe, scale_label
from npe.results import is_done, result_path, write_failure, write_result
from npe.training import training_losses

#: Progress lines of a run (npe.logs: the commands show them; a notebook's logging configuration decides).
log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- the plan
@dataclass
class TrainJob:
    """One training run: a distinct training configuration at one seed, shared by ``variants``."""

    train_key: str
    seed: int
    variants: list[Variant]
    work_dir: Path

    @property
    def representative(self) -> Variant:
        return self.variants[0]

    @property
    def protocol(self) -> str:
        """The effective protocol the job trains under (that of its variants)."""
        return self.representative.protocol

    def expected(self, recipe: Recipe) -> list[tuple[str, float | str]]:
        """(variant, s) pairs this job produces result files for."""
        return [(row.name, row.s) for row in job_rows(recipe, self)]


def plan_runs(recipe: Recipe, variants: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
              work_root: Path | None = None) -> list[TrainJob]:
    """The training jobs of a recipe, restricted to ``variants`` / ``seeds`` when given."""
    if variants:
        known = {v.name for v in recipe.variants}
        unknown = [v for v in variants if v not in known]
        if unknown:
            raise RecipeError(f'{recipe.path}: no variant named {", ".join(unknown)}; '
                            f'variants: {", ".join(sorted(known))}')
    chosen_seeds = list(seeds) if seeds else list(recipe.seeds)
    from npe.config import check_seed
    for seed in chosen_seeds:
        check_seed(seed, '--seeds')
    root = paths.work_root(work_root) / recipe.name
    jobs = []
    for key, group in recipe.train_groups().items():
        group = [v for v in group if not variants or v.name in variants]
        if not group:
            continue
        for seed in chosen_seeds:
            jobs.append(TrainJob(key, seed, group, root / f'{group[0].name}__seed{seed}'))
    return jobs


def describe_plan(recipe: Recipe, jobs: list[TrainJob], data_root: Path, results_dir: Path,
                  gpus: int = 0, batch_per_process: int | None = None) -> str:
    """Human-readable plan: runs, iterations, evaluations, data and checkpoints to fetch, cost."""
    spec = datasets.get(recipe.dataset)
    cfg = job_train_config(recipe, jobs[0], data_root, None, quiet=True, gpus=gpus,
                           batch_per_process=batch_per_process) if jobs else None
    iters = int(cfg.train_cfg.max_iters) if cfg is not None else 0
    split = dict(cfg.npe.distributed) if cfg is not None else dict(world_size=1, total_batch=0)
    batch = int(split['total_batch'])
    lines = [f'recipe {recipe.name}: {recipe.title}',
             f'  file {recipe.path} (sha256 {recipe.sha256[:12]}), protocol {recipe.protocol}, '
             f'base config {recipe.base_config}']
    prepared = spec.is_prepared(data_root)
    lines.append(f'  data: {recipe.dataset} -> {spec.path(data_root)} '
                 f'({"prepared" if prepared else "to prepare"})')
    if not prepared:
        for src in spec.files_to_fetch():
            lines.append(f'    fetch {src.url}')
    if recipe.load_from:
        lines.append(f'  initial checkpoint: {recipe.load_from.url}')
    n_done = n_eval = 0
    per = (f' ({split["world_size"]} processes x {split["batch_per_process"]})'
           if split['world_size'] > 1 else '')
    lines.append(f'  training runs ({len(jobs)}), {iters} iterations x batch {batch}{per} each:')
    for job in jobs:
        expected = job.expected(recipe)
        done = sum(is_done(result_path(results_dir, recipe.name, v, job.seed, s)) for v, s in expected)
        n_done += done
        n_eval += len(expected)
        v = job.representative
        names = ', '.join(x.name for x in job.variants)
        lines.append(f'    seed {job.seed}: [{names}] num_pem={v.num_pem} pem_type={v.pem_type} '
                     f'freeze_backbone={v.freeze_backbone} freeze_decode={v.freeze_decode} '
                     f'protocol={v.protocol} -> {len(expected)} result files ({done} done)')
    lines.append(f'  cost: {len(jobs) * iters} training iterations ({len(jobs) * iters * batch} images), '
                 f'{n_eval} result files ({n_done} already done), results in {results_dir / recipe.name}')
    if recipe.seconds_per_iteration:
        total = len(jobs) * iters * recipe.seconds_per_iteration
        lines.append(f'  expected training time: {len(jobs)} runs x {iters} iterations x '
                     f'{recipe.seconds_per_iteration:g} s = about {total / 60:.0f} min (the recipe\'s '
                     'seconds_per_iteration, measured on 2 CPU cores), plus one holdout and one validation '
                     'pass per run')
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- training
def job_train_config(recipe: Recipe, job: TrainJob, data_root: Path, checkpoint: Path | None,
                     quiet: bool = False, gpus: int = 0, **launch_options):
    """The MMSeg config of one training job: ``npe-train``'s config with the recipe's options.

    ``gpus`` N >= 1: built for N torchrun processes (:func:`npe.training.train_launched`);
    ``launch_options``: ``batch_per_process``, ``amp``, ``amp_dtype`` of ``build_train_config``.
    """
    import io

    from npe.training import build_train_config

    variant = job.representative
    options = dict(recipe.cfg_options)
    options.update(variant.cfg_options)
    if recipe.max_iters:
        options.setdefault('train_cfg.max_iters', recipe.max_iters)
    with contextlib.redirect_stderr(io.StringIO() if quiet else sys.stderr):
        cfg = build_train_config(
            str(recipe.base_config_path or recipe.base_config), load_from=str(checkpoint) if checkpoint else None,
            work_dir=job.work_dir, freeze_backbone=variant.freeze_backbone,
            freeze_decode=variant.freeze_decode, num_pem=variant.num_pem, pem_type=variant.pem_type,
            protocol=variant.protocol, cfg_options=options, seed=int(job.seed), resume=True,
            data_root=datasets.get(recipe.dataset).path(data_root), check_data_folders=False,
            launcher='pytorch' if gpus else 'none', world_size=gpus or None, **launch_options)
    max_iters = int(cfg.train_cfg.max_iters)
    # A recipe that shortens the run keeps the LR schedule inside it.
    for sched in cfg.get('param_scheduler') or []:
        if sched.get('end', 0) > max_iters:
            sched['end'] = max_iters
        if 'milestones' in sched:
            sched['milestones'] = [m for m in sched['milestones'] if m < max_iters]
    if cfg.train_cfg.get('val_interval', 0) > max_iters:
        cfg.train_cfg.val_interval = max_iters
    cfg.npe_recipe = dict(name=recipe.name, sha256=recipe.sha256, train_key=job.train_key,
                          seed=int(job.seed))
    return cfg


def train_job(cfg, work_dir: Path, gpus: int = 0, log=None) -> dict:
    """Train (resuming from the last checkpoint in ``work_dir`` if any); return the train record.

    ``gpus`` N >= 1: through torchrun on N processes (output to ``log``). A finished training leaves
    ``npe_train_done.json``; a second call returns that record at once.
    """
    from npe.training import run_training, train_launched

    marker = work_dir / TRAIN_MARKER
    if marker.is_file():
        return json.loads(marker.read_text())
    resumed_from = cfg.load_from if cfg.get('resume') else None
    out = train_launched(cfg, gpus, log=log) if gpus else run_training(cfg)
    record = dict(iterations=out['iterations'], wall_time_s=round(out['wall_time_s'], 2),
                  resumed_from=resumed_from, checkpoint=out['checkpoint'], finished=provenance.utc_now(),
                  distributed=out.get('distributed'), device=out.get('device'))
    write_json_atomic(marker, record)
    return record


# ----------------------------------------------------------------------------- evaluation
def _holdout_split(recipe: Recipe) -> str:
    split = datasets.get(recipe.dataset).holdout_split
    if split is None:
        raise UserError(f'{recipe.path}: auto_scale needs a dataset with a holdout split; '
                        f'{recipe.dataset} has none')
    return split


@dataclass
class EvalRow:
    """One result file a training job produces: row ``name`` at ``s``, computed from the job's model
    ``variant`` with adjustment ``kind`` (``'npe'`` | ``'counted'`` | ``'none'``, see
    :meth:`npe.models.wrapper.MultiHeadWrapper.adjust_blocks`); ``adjustment`` is what the result
    file records (``'npe'`` | ``'counted_la'`` | ``'none'``)."""

    name: str
    s: float | str
    kind: str
    adjustment: str
    variant: Variant


def job_rows(recipe: Recipe, job: TrainJob) -> list[EvalRow]:
    """Every (row, s) the job's model is evaluated at: its variants, the baseline's counted LA, and
    the NPE variants' decomposition rows (``npe_main_only``, ``npe_counted_la``)."""
    rows = []
    for v in job.variants:
        label = 'npe' if v.num_pem > 0 else 'none'
        rows += [EvalRow(v.name, s, 'npe', label, v) for s in recipe.scales_of(v.name)]
        if v.is_baseline and recipe.counted_la:
            rows += [EvalRow(COUNTED_LA, s, 'counted', 'counted_la', v) for s in recipe.counted_la_scales()]
        for name, derived in recipe.derived_of(v.name).items():
            kind, adjustment = ('none', 'none') if derived == MAIN_ONLY else ('counted', 'counted_la')
            rows += [EvalRow(name, s, kind, adjustment, v) for s in recipe.scales_of(name)]
    return rows


def choose_scales(recipe: Recipe, work_dir: Path, checkpoint: str, log_prior, kinds: Sequence[str],
                  per_s: bool = False) -> dict[str, tuple[float, dict]]:
    """Pick s per adjustment kind on the holdout split (never the validation set), by the recipe's
    auto metric, all kinds and candidates in one pass; ties go to the smaller s.
    Returns ``{kind: (s, {"metric", "split", "candidates": {label: score}})}``."""
    from npe.evaluation import evaluate

    if not kinds:
        return {}
    auto = recipe.auto_scale
    split = _holdout_split(recipe)
    rows = evaluate(work_dir, checkpoint=checkpoint, data_split=split, record_prior=False,
                    log_prior=log_prior, per_s=per_s,
                    adjustments=[(kind, c) for kind in kinds for c in auto.candidates])
    chosen = {}
    for kind in kinds:
        scores = {scale_label(r['scale_factor']): r['metrics'][auto.metric] for r in rows
                  if r['adjustment'] == kind}
        best = max(auto.candidates, key=lambda c: (scores[scale_label(c)], -c))
        chosen[kind] = (float(best), dict(metric=auto.metric, split=split, candidates=scores))
    return chosen


def evaluate_job(recipe: Recipe, job: TrainJob, record: dict, log_prior: list[float],
                 todo: set, per_s: bool = False, keep_predictions: Sequence[str] = ()) -> list[dict]:
    """Evaluate the trained job at every (row, s) in ``todo``; return result payloads.

    One pass over the holdout split picks every ``auto`` s, one pass over the validation split
    evaluates every row (:mod:`npe.sweep`); ``per_s`` = one evaluation per s instead (same numbers).
    """
    from npe.evaluation import evaluate

    checkpoint = record['checkpoint']
    rows = [r for r in job_rows(recipe, job) if (r.name, r.s) in todo]
    if not rows:
        return []
    chosen = choose_scales(recipe, job.work_dir, checkpoint, log_prior,
                           sorted({r.kind for r in rows if r.s == AUTO}), per_s=per_s)
    value = {id(r): chosen[r.kind][0] if r.s == AUTO else float(r.s) for r in rows}
    blocks = list(dict.fromkeys((r.kind, value[id(r)]) for r in rows))
    found = evaluate(job.work_dir, checkpoint=checkpoint, adjustments=blocks, per_s=per_s,
                     record_prior=any(v.num_pem > 0 for v in job.variants), log_prior=log_prior,
                     keep_predictions=keep_predictions)
    by_block = {(f['adjustment'], f['scale_factor']): f for f in found}
    learned_prior = next((f['learned_prior'] for f in found if f.get('learned_prior') is not None), None)
    payloads = []
    for r in rows:
        v = r.variant
        payloads.append(dict(
            variant=r.name, s=r.s, value=value[id(r)], row=by_block[(r.kind, value[id(r)])],
            auto=chosen[r.kind][1] if r.s == AUTO else None, adjustment=r.adjustment,
            learned_prior=learned_prior if r.adjustment == 'npe' else None,
            options=dict(num_pem=v.num_pem, pem_type=v.pem_type, freeze_backbone=v.freeze_backbone,
                         freeze_decode=v.freeze_decode)))
    return payloads


# ----------------------------------------------------------------------------- the whole run
def run_recipe(recipe: Recipe | str | os.PathLike, options: DriverOptions | None = None,
               **keywords: Any) -> int:
    """Run a recipe end to end, what ``npe-repro`` does: data, trainings, evaluations, result files.

    Args:
        recipe: a recipe name (``recipes/<name>.yaml``), a path to a YAML file, or a loaded
            :class:`~npe.recipes.Recipe`.
        options: how to run it (:class:`~npe.driver_options.DriverOptions`, ``npe-repro``'s flags).
        keywords: fields of ``options`` given one by one (``variants=['npe1'], dry_run=True``), on
            top of ``options`` when both are given.

    Returns:
        The number of training jobs that failed (each recorded as ``failed`` result files).

    Raises:
        npe.errors.RecipeError: the recipe is invalid or names an unknown variant.
        npe.errors.DataError: data or the initial checkpoint cannot be had (one message lists all).

    Finished runs are skipped; an interrupted training resumes from its last checkpoint.
    """
    opts = DriverOptions.from_keywords(options, keywords)
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    root = paths.data_root(opts.data_root)
    results = paths.results_dir(opts.results_dir)
    work_root = paths.work_root(opts.work_dir)
    jobs = plan_runs(recipe, opts.variants, opts.seeds, opts.work_dir)
    if opts.gpus < 0:
        raise UserError(f'--gpus must be >= 0, got {opts.gpus}')
    seen = set()
    for job in jobs:  # every distinct configuration builds (typed options, seeds) before any work
        if job.train_key not in seen:
            seen.add(job.train_key)
            job_train_config(recipe, job, root, None, quiet=True, gpus=opts.gpus,
                             **dict(opts.launch_options, amp=False))
    tables = opts.tables
    if opts.task is not None:
        if not 0 <= opts.task < len(jobs):
            raise RecipeError(f'{recipe.path}: --task {opts.task} is out of range: the plan has '
                              f'{len(jobs)} trainings (0..{len(jobs) - 1})')
        jobs, tables = [jobs[opts.task]], False
    if opts.dry_run:
        print(describe_plan(recipe, jobs, root, results, opts.gpus, opts.batch_per_process))
        return 0
    check_run_outputs(recipe, results, work_root, root, tables)
    checkpoint = prepare_inputs(recipe, root, paths.mirror(opts.mirror), paths.offline(opts.offline))
    if jobs:  # every option checked before anything runs or is submitted (AMP on the GPU nodes)
        job_train_config(recipe, jobs[0], root, checkpoint, quiet=True, gpus=opts.gpus,
                         **dict(opts.launch_options, amp=opts.amp and opts.slurm is None))
    if opts.slurm is not None:
        return _submit(recipe, len(jobs), opts, root, results, work_root)
    share, log_prior = counted_log_prior(recipe, root)
    failures = 0
    # A job another driver is training is put off, then waited for at the end (each job's lock).
    waiting: list[tuple[int, TrainJob]] = []
    ctx = _Context(recipe, opts, root, results, checkpoint, share, log_prior, provenance.environment(),
                   examples.pick_images(datasets.get(recipe.dataset), root, share))
    for i, job in enumerate(jobs, 1):
        failures += _locked_job(ctx, job, f'[{i}/{len(jobs)}]', waiting=waiting, index=i)
    for i, job in waiting:
        failures += _locked_job(ctx, job, f'[{i}/{len(jobs)}]', put_off=True)
    if tables:
        write_tables(recipe, results)
    return failures


def _submit(recipe: Recipe, tasks: int, opts: DriverOptions, root: Path, results: Path,
            work_root: Path) -> int:
    """Submit the plan to Slurm (:func:`npe.launch.submit_recipe`): task i runs ``npe-repro RECIPE``
    with the driver's own options (``to_argv``), the folders resolved here, the inputs prepared here
    (so ``--offline``) and the tables left to the job after the array. Returns 0."""
    from npe import launch

    if not tasks:
        raise RecipeError(f'{recipe.path}: nothing to submit (no training in the plan)')
    task_options = opts.replace(data_root=str(root), results_dir=str(results), work_dir=str(work_root),
                                mirror=None, offline=True, tables=False, slurm=None, task=None)
    return launch.submit_recipe(recipe.path, recipe.name, tasks, task_options.to_argv(), results,
                                work_root, list(opts.slurm or ()), gpus=opts.gpus, tables=opts.tables)


@dataclass
class _Context:
    """What every job of one :func:`run_recipe` call shares: its options and what the run found."""
    recipe: Recipe
    options: DriverOptions
    root: Path
    results: Path
    checkpoint: Path | None
    share: list[float]
    log_prior: list[float]
    env: dict
    example_images: list[str]


def _todo(ctx: _Context, job: TrainJob) -> set:
    return {(v, s) for v, s in job.expected(ctx.recipe)
            if not is_done(result_path(ctx.results, ctx.recipe.name, v, job.seed, s))}


def _locked_job(ctx: _Context, job: TrainJob, tag: str, waiting: list | None = None,
                index: int = 0, put_off: bool = False) -> int:
    """One job under its lock: skipped when done, put off into ``waiting`` (when given) or waited
    for when another driver holds the lock; returns 1 if it failed, else 0. ``put_off``: the job
    was put off earlier because another driver held it (so if it is done now, that driver did it)."""
    from npe.locking import job_lock, try_acquire

    names = ', '.join(v.name for v in job.variants)
    if not _todo(ctx, job):
        log.info('%s %s seed %s: %s', tag, names, job.seed,
                 'done by another npe-repro, skipped' if put_off else 'done, skipped')
        return 0
    lock = job_lock(job.work_dir)
    if not try_acquire(lock):
        if waiting is not None:
            log.info('%s %s seed %s: another npe-repro is training it (%s); going on with the other '
                     'runs first', tag, names, job.seed, lock.lock_file)
            waiting.append((index, job))
            return 0
        log.info('%s %s seed %s: waiting for the other npe-repro to finish it', tag, names, job.seed)
        lock.acquire()
    try:
        todo = _todo(ctx, job)
        if not todo:
            log.info('%s %s seed %s: done by another npe-repro, skipped', tag, names, job.seed)
            return 0
        return _run_job(ctx, job, tag, names, todo)
    finally:
        lock.release()


def _run_job(ctx: _Context, job: TrainJob, tag: str, names: str, todo: set) -> int:
    """Train (or resume) one job, evaluate it, write its result files; 1 if it failed, else 0."""
    from npe.training import readable_checkpoint, set_aside

    recipe, results, env = ctx.recipe, ctx.results, ctx.env
    keep = ctx.example_images if job.seed == recipe.seeds[0] else []
    log.info('%s %s seed %s: training in %s', tag, names, job.seed, job.work_dir)
    try:
        opts = ctx.options
        cfg = job_train_config(recipe, job, ctx.root, ctx.checkpoint, quiet=True, gpus=opts.gpus,
                               **opts.launch_options)
        if job.work_dir.is_dir():  # checkpoints cut off by a kill: out of the way, one line each
            set_aside(readable_checkpoint(job.work_dir)[1])
            clean_stale_temps(job.work_dir)
        with console_to(None if opts.verbose else job.work_dir / 'npe-repro.log'):
            record = train_job(cfg, job.work_dir, opts.gpus, log=None if opts.verbose else sys.stdout)
            items = evaluate_job(recipe, job, record, ctx.log_prior, todo, per_s=opts.per_s,
                                 keep_predictions=keep)
    except UserError:
        raise
    except Exception as exc:  # one broken run must not hide the others; it is recorded
        message = f'{type(exc).__name__}: {exc}'.splitlines()[0]
        log.error('%s %s seed %s: FAILED (%s); see %s', tag, names, job.seed, message,
                  job.work_dir / 'npe-repro.log')
        for v, s in sorted(todo, key=str):
            path = write_failure(results, recipe, train_key=job.train_key, protocol=job.protocol,
                                 seed=job.seed, variant=v, s=s, error=message, env=env)
            log.info(provenance.result_line(json.loads(path.read_text())))
        return 1
    loss = training_losses(job.work_dir)
    for item in items:
        path = write_result(results, recipe, train_key=job.train_key, protocol=job.protocol,
                            seed=job.seed, item=item, record=record, share=ctx.share, loss=loss, env=env)
        log.info(provenance.result_line(json.loads(path.read_text())))
    if keep:
        examples.save(results, recipe, datasets.get(recipe.dataset), ctx.root, keep,
                      examples.example_rows(recipe, items))
    log.info('%s %s seed %s: %d result files written (training %.0f s)', tag, names, job.seed, len(items),
             record['wall_time_s'])
    return 0


def write_tables(recipe: Recipe, results: Path) -> None:
    """Rebuild this recipe's tables and figures and print the Markdown table."""
    from npe import tables

    written = tables.build(results, recipes=[str(recipe.path)])
    md = next((p for p in written if p.name == f'{recipe.name}.md'), None)
    if md is not None:
        print(md.read_text())
        figures = sorted(p for p in written if p.suffix == '.png')
        for fig in figures:
            print(f'figure: {fig}')

