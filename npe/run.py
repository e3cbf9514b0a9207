"""Run a recipe: data -> training (once per distinct configuration and seed) -> evaluation at every
scale factor -> one result file per (variant, seed, s) -> tables and figures.

:func:`run_recipe` (``npe.run_recipe``) takes the driver's options (:mod:`npe.driver_options`),
prepares the inputs (:mod:`npe.recipe_inputs`), and runs each job of the plan (:mod:`npe.jobs`)
under its lock, writing its result files (:mod:`npe.results`), or submits the plan to Slurm.
Finished runs are skipped; an interrupted training resumes from its last checkpoint (MMEngine's
own resume); a failed job is recorded and the others go on.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npe import examples, launch, paths, provenance
from npe.driver_options import DriverOptions
from npe.errors import NO_SPACE, RecipeError, UserError
from npe.files import clean_stale_temps
# choose_scales and job_rows: re-exported from their first home (tests, older scripts import them here)
from npe.jobs import (TrainJob, choose_scales, describe_plan, evaluate_job, job_rows,  # noqa: F401
                      job_train_config, plan_runs, train_job)
from npe.preflight import check_run_outputs, register_driver, warn_other_drivers
from npe.recipe_inputs import counted_log_prior, prepare_inputs
from npe.recipes import Recipe, load_recipe
from npe.results import as_record, parse_result, result_path, write_failure, write_result
from npe.work_dir import readable_checkpoint, set_aside, training_losses

#: Progress lines of a run (npe.logs: the commands show them; a notebook's logging configuration decides).
log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- the whole run
@dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_recipe` did: the result records of the runs it covered, and its failures."""

    #: One record per result file of the planned runs (finished now or before, failed ones too), as
    #: :func:`npe.load_results` gives them; empty for a plan (``dry_run``) or a Slurm submission.
    records: list[dict[str, Any]]
    #: Training jobs that failed in this call (each recorded as ``failed`` result files).
    failures: int = 0

    @property
    def ok(self) -> bool:
        """No training job failed."""
        return self.failures == 0


def _records(recipe: Recipe, jobs: list[TrainJob], results: Path) -> list[dict[str, Any]]:
    """The result records of every (variant, seed, s) the jobs produce, where a file is there."""
    records = []
    for job in jobs:
        for variant, s in job.expected(recipe):
            path = result_path(results, recipe.name, variant, job.seed, s)
            if path.is_file():
                records.append(as_record(parse_result(path), path))
    return records


def run_recipe(recipe: Recipe | str | os.PathLike, options: DriverOptions | None = None,
               **keywords: Any) -> RunOutcome:
    """Run a recipe end to end, what ``npe-repro`` does: data, trainings, evaluations, result files.

    Args:
        recipe: a recipe name (``recipes/<name>.yaml``), a path to a YAML file, or a loaded
            :class:`~npe.recipes.Recipe`.
        options: how to run it (:class:`~npe.driver_options.DriverOptions`, ``npe-repro``'s flags).
        keywords: fields of ``options`` given one by one (``variants=['npe1'], dry_run=True``), on
            top of ``options`` when both are given.

    Returns:
        :class:`RunOutcome`: ``.records``, the result files of the runs it covered as plain records
        (:func:`npe.load_results`'s), and ``.failures``, the training jobs that failed (each
        recorded as ``failed`` result files). MMEngine's log goes to each work dir's
        ``npe-repro.log`` unless ``verbose=True``.

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
    if opts.gpus and opts.slurm is None and not opts.dry_run:  # Slurm's nodes have GPUs of their own
        launch.check_visible_gpus(opts.gpus, f'--gpus {opts.gpus}', 'give a smaller --gpus')
    seen = set()
    for job in jobs:  # every distinct configuration builds (typed options, seeds) before any work
        if job.train_key not in seen:
            seen.add(job.train_key)
            # AMP is checked here only where this process trains (not a plan, not a Slurm submission)
            job_train_config(recipe, job, root, None, quiet=True, gpus=opts.gpus,
                             **dict(opts.launch_options,
                                    amp=opts.amp and opts.slurm is None and not opts.dry_run))
    tables = opts.tables
    if opts.task is not None:
        if not 0 <= opts.task < len(jobs):
            raise RecipeError(f'{recipe.path}: --task {opts.task} is out of range: the plan has '
                              f'{len(jobs)} trainings (0..{len(jobs) - 1})')
        jobs, tables = [jobs[opts.task]], False
    if opts.dry_run:
        print(describe_plan(recipe, jobs, root, results, opts.gpus, opts.batch_per_process))
        return RunOutcome(records=[])
    check_run_outputs(recipe, results, work_root, root, tables)
    warn_other_drivers(results / recipe.name, work_root)   # a driver with another work dir
    if opts.slurm is None and not any(job.pending(recipe, results) for job in jobs):
        # every result file is there (e.g. the committed ones): no data to generate or fetch
        for i, job in enumerate(jobs, 1):
            log.info('[%d/%d] %s seed %s: done, skipped', i, len(jobs),
                     ', '.join(v.name for v in job.variants), job.seed)
        if tables:
            write_tables(recipe, results)
        return RunOutcome(records=_records(recipe, jobs, results))   # not 0: callers read .ok / .records
    checkpoint = prepare_inputs(recipe, root, paths.mirror(opts.mirror), paths.offline(opts.offline))
    first_cfg = None
    if jobs:  # every option checked before anything runs or is submitted (AMP on the GPU nodes)
        first_cfg = job_train_config(recipe, jobs[0], root, checkpoint, quiet=True, gpus=opts.gpus,
                                     **dict(opts.launch_options, amp=opts.amp and opts.slurm is None))
    register_driver(results / recipe.name, work_root)   # after every check: a refused run leaves nothing
    if opts.slurm is not None:
        # the array's task ids are plan indices: with --task I only training I is submitted (and run)
        indices = [opts.task] if opts.task is not None else list(range(len(jobs)))
        _submit(recipe, indices, opts.replace(tables=tables), root, results, work_root)
        return RunOutcome(records=[])   # the job array writes the result files later
    share, log_prior = counted_log_prior(recipe, root, first_cfg)
    failures = 0
    # A job another driver is training is put off, then waited for at the end (each job's lock).
    waiting: list[tuple[int, TrainJob]] = []
    # examples figure: the validation images the evaluation reads (MMSeg's dataset class, either kind of set)
    shown = examples.validation_images(first_cfg) if first_cfg is not None else examples.ValidationImages({}, ())
    ctx = _Context(recipe, opts, root, results, checkpoint, share, log_prior, provenance.environment(),
                   shown, examples.pick_images(shown, share))
    for i, job in enumerate(jobs, 1):
        failures += _locked_job(ctx, job, f'[{i}/{len(jobs)}]', waiting=waiting, index=i)
    for i, job in waiting:
        failures += _locked_job(ctx, job, f'[{i}/{len(jobs)}]', put_off=True)
    if tables:
        write_tables(recipe, results)
    return RunOutcome(records=_records(recipe, jobs, results), failures=failures)


def _submit(recipe: Recipe, tasks: list[int], opts: DriverOptions, root: Path, results: Path,
            work_root: Path) -> int:
    """Submit the plan's trainings ``tasks`` (plan indices) to Slurm (:func:`npe.launch.submit_recipe`):
    array task i runs ``npe-repro RECIPE --task i`` with the driver's own options (``to_argv``), the
    folders resolved here, the inputs prepared here (so ``--offline``) and the tables left to the job
    after the array. Returns 0."""
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
    validation: examples.ValidationImages
    example_images: list[str]


def _locked_job(ctx: _Context, job: TrainJob, tag: str, waiting: list | None = None,
                index: int = 0, put_off: bool = False) -> int:
    """One job under its lock: skipped when done, put off into ``waiting`` (when given) or waited
    for when another driver holds the lock; returns 1 if it failed, else 0. ``put_off``: the job
    was put off earlier because another driver held it (so if it is done now, that driver did it)."""
    from npe.locking import job_lock, try_acquire

    names = ', '.join(v.name for v in job.variants)
    if not job.pending(ctx.recipe, ctx.results):
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
        todo = job.pending(ctx.recipe, ctx.results)
        if not todo:
            log.info('%s %s seed %s: done by another npe-repro, skipped', tag, names, job.seed)
            return 0
        return _run_job(ctx, job, tag, names, todo)
    finally:
        lock.release()


def _run_job(ctx: _Context, job: TrainJob, tag: str, names: str, todo: set) -> int:
    """Train (or resume) one job, evaluate it, write its result files; 1 if it failed, else 0."""
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
        log_file = None if opts.verbose else job.work_dir / 'npe-repro.log'   # MMEngine's log of the run
        record = train_job(cfg, job.work_dir, opts.gpus, log_file=log_file)
        items = evaluate_job(recipe, job, record, ctx.log_prior, todo, per_s=opts.per_s,
                             keep_predictions=keep, log_file=log_file)
    except UserError:
        raise
    except Exception as exc:  # one broken run must not hide the others; it is recorded
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:  # the disk, not the run: the rerun redoes it
            raise
        message = f'{type(exc).__name__}: {exc}'.splitlines()[0]
        log.error('%s %s seed %s: FAILED (%s); see %s', tag, names, job.seed, message,
                  job.work_dir / 'npe-repro.log')
        for v, s in sorted(todo, key=str):
            path = write_failure(results, recipe, train_key=job.train_key, protocol=job.protocol,
                                 seed=job.seed, variant=v, s=s, error=message, env=env)
            log.info(provenance.result_line(json.loads(path.read_text())))
        return 1
    loss = training_losses(job.work_dir)
    if keep:  # before the result files: a job whose files exist is skipped, so a full disk here is redone
        examples.save(results, recipe, ctx.validation, keep, examples.example_rows(recipe, items))
    for item in items:
        path = write_result(results, recipe, train_key=job.train_key, protocol=job.protocol,
                            seed=job.seed, item=item, record=record, share=ctx.share, loss=loss, env=env)
        log.info(provenance.result_line(json.loads(path.read_text())))
    log.info('%s %s seed %s: %d result files written (training %.0f s)', tag, names, job.seed, len(items),
             record['wall_time_s'])
    return 0


def _shown(path: Path) -> str:
    """``path`` as the summary names it: relative to the current folder when inside it (short)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def write_tables(recipe: Recipe, results: Path) -> None:
    """Rebuild this recipe's tables and figures; print the compact summary (at most 100 columns; the
    full tables are in the files) and where the result files, tables and figures are."""
    from npe import tables
    from npe.results import read_results
    from npe.stats import summarize

    written = tables.build(results, recipes=[str(recipe.path)])
    table_files = [p for p in written if p.suffix in ('.md', '.tex', '.csv')
                   and p.stem in (recipe.name, f'{recipe.name}_paired')]
    figures = sorted(p for p in written if p.suffix == '.png')   # build() drew this recipe's only
    if not table_files:
        return
    summary = summarize(recipe, read_results(results, recipe.name, recipe.dataset))
    folder = results / recipe.name
    n_files = len(list(folder.glob('*.json'))) if folder.is_dir() else 0
    print(tables.render_summary(summary))
    print(f'result files: {_shown(folder)}/ ({n_files} files)')
    ordered = sorted(table_files, key=lambda p: (len(p.stem), '.md .tex .csv'.find(p.suffix)))
    for label, files in (('tables:', ordered), ('figures:', figures)):
        for i, path in enumerate(files):   # one path a line: each can be copied, none is cut
            print(f'{label if i == 0 else "":14s}{_shown(path)}')
