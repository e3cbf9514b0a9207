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
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from npe import paths
from npe.constants import AUTO, COUNTED_LA, TRAIN_MARKER
from npe.errors import RecipeError, UserError
from npe.files import check_output_dir, write_json_atomic
from npe.recipes import Recipe, Variant, load_recipe, scale_label
from npe.results import is_done, result_path, utc_now, write_failure, write_result
from npe.training import training_loss


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
        out = []
        for variant in self.variants:
            out += [(variant.name, s) for s in recipe.scales_of(variant.name)]
            if variant.is_baseline and recipe.counted_la:
                out += [(COUNTED_LA, s) for s in recipe.counted_la_scales()]
        return out


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


def describe_plan(recipe: Recipe, jobs: list[TrainJob], data_root: Path, results_dir: Path) -> str:
    """Human-readable plan: runs, iterations, evaluations, data and checkpoints to fetch, cost."""
    from npe import datasets

    spec = datasets.get(recipe.dataset)
    cfg = job_train_config(recipe, jobs[0], data_root, None, quiet=True) if jobs else None
    iters = int(cfg.train_cfg.max_iters) if cfg is not None else 0
    batch = int(cfg.train_dataloader.batch_size) if cfg is not None else 0
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
    lines.append(f'  training runs ({len(jobs)}), {iters} iterations x batch {batch} each:')
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
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- inputs
def prepare_inputs(recipe: Recipe, data_root: Path, mirror: str | None = None,
                   offline: bool = False) -> Path | None:
    """Prepare the recipe's dataset and fetch its initial checkpoint; return the checkpoint path.

    Both are attempted before failing, so one message lists everything still to fetch.
    """
    from npe import datasets

    problems = []
    try:
        datasets.get(recipe.dataset).prepare(data_root, mirror=mirror, offline=offline)
    except UserError as exc:
        problems.append(str(exc))
    checkpoint = None
    if recipe.load_from is not None:
        try:
            checkpoint = datasets.fetch_checkpoint(recipe.load_from.url, checksum=recipe.load_from.sha256,
                                                   data_root=data_root, mirror=mirror, offline=offline)
        except UserError as exc:
            problems.append(str(exc))
    if problems:
        raise UserError('\n'.join(problems))
    return checkpoint


def counted_log_prior(recipe: Recipe, data_root: Path) -> tuple[list[float], list[float]]:
    """Training-set pixel shares and their logs (the counted prior of classic logit adjustment)."""
    from npe import datasets

    counts = [int(c) for c in datasets.get(recipe.dataset).class_pixel_counts(data_root, 'training')]
    total = sum(counts)
    share = [c / total for c in counts]
    return share, [math.log(max(p, 1e-12)) for p in share]


# ----------------------------------------------------------------------------- training
def job_train_config(recipe: Recipe, job: TrainJob, data_root: Path, checkpoint: Path | None,
                     quiet: bool = False):
    """The MMSeg config of one training job: ``npe-train``'s config with the recipe's options."""
    import io

    from npe import datasets
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
            data_root=datasets.get(recipe.dataset).path(data_root), check_data_folders=False)
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


def train_job(cfg, work_dir: Path) -> dict:
    """Train (resuming from the last checkpoint in ``work_dir`` if any); return the train record.

    A finished training leaves ``npe_train_done.json``; a second call returns that record at once.
    """
    from npe.training import run_training

    marker = work_dir / TRAIN_MARKER
    if marker.is_file():
        return json.loads(marker.read_text())
    resumed_from = cfg.load_from if cfg.get('resume') else None
    out = run_training(cfg)
    record = dict(iterations=out['iterations'], wall_time_s=round(out['wall_time_s'], 2),
                  resumed_from=resumed_from, checkpoint=out['checkpoint'], finished=utc_now())
    write_json_atomic(marker, record)
    return record


# ----------------------------------------------------------------------------- evaluation
def _holdout_split(recipe: Recipe) -> str:
    from npe import datasets

    split = datasets.get(recipe.dataset).holdout_split
    if split is None:
        raise UserError(f'{recipe.path}: auto_scale needs a dataset with a holdout split; '
                        f'{recipe.dataset} has none')
    return split


def _choose_scale(recipe: Recipe, work_dir: Path, checkpoint: str, log_prior) -> tuple[float, dict]:
    """Pick s on the holdout split (never the validation set) by the recipe's auto metric."""
    from npe.evaluation import evaluate

    auto = recipe.auto_scale
    split = _holdout_split(recipe)
    rows = evaluate(work_dir, checkpoint=checkpoint, scale_factors=list(auto.candidates),
                    data_split=split, record_prior=False, log_prior=log_prior)
    scores = {scale_label(r['scale_factor']): r['metrics'][auto.metric] for r in rows}
    best = max(auto.candidates, key=lambda s: (scores[scale_label(s)], -s))
    return float(best), dict(metric=auto.metric, split=split, candidates=scores)


def evaluate_job(recipe: Recipe, job: TrainJob, record: dict, log_prior: list[float],
                 todo: set) -> list[dict]:
    """Evaluate the trained job at every (variant, s) in ``todo``; return result payloads."""
    from npe.evaluation import evaluate

    checkpoint = record['checkpoint']
    payloads = []
    learned_prior = None
    for variant in job.variants:
        adjustments = [(variant.name, recipe.scales_of(variant.name), None)]
        if variant.is_baseline and recipe.counted_la:
            adjustments.append((COUNTED_LA, recipe.counted_la_scales(), log_prior))
        for name, scales, prior in adjustments:
            wanted = [s for s in scales if (name, s) in todo]
            if not wanted:
                continue
            numeric = [float(s) for s in wanted if s != AUTO]
            chosen = None
            if AUTO in wanted:
                value, info = _choose_scale(recipe, job.work_dir, checkpoint, prior)
                chosen = (value, info)
                if value not in numeric:
                    numeric.append(value)
            rows = evaluate(job.work_dir, checkpoint=checkpoint, scale_factors=numeric or [1.0],
                            record_prior=variant.num_pem > 0, log_prior=prior)
            by_s = {float(r['scale_factor']): r for r in rows}
            for row in rows:
                if row.get('learned_prior') is not None and learned_prior is None:
                    learned_prior = row['learned_prior']
            for s in wanted:
                value = chosen[0] if s == AUTO else float(s)
                row = by_s[value]
                payloads.append(dict(
                    variant=name, s=s, value=value, row=row,
                    auto=chosen[1] if s == AUTO else None,
                    adjustment='counted_la' if name == COUNTED_LA else (
                        'npe' if variant.num_pem > 0 else 'none'),
                    options=dict(num_pem=variant.num_pem, pem_type=variant.pem_type,
                                 freeze_backbone=variant.freeze_backbone,
                                 freeze_decode=variant.freeze_decode)))
    for p in payloads:
        p['learned_prior'] = learned_prior if p['adjustment'] == 'npe' else None
    return payloads


# ----------------------------------------------------------------------------- provenance
def environment() -> dict:
    """Versions and machine facts recorded in every result file."""
    import mmcv
    import mmengine
    import mmseg
    import torch

    from npe.constants import __version__

    commit = None
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=paths.repo_root(), capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    cuda = torch.version.cuda if torch.cuda.is_available() else None
    return dict(python=platform.python_version(), torch=torch.__version__, cuda=cuda,
                mmcv=mmcv.__version__, mmengine=mmengine.__version__, mmseg=mmseg.__version__,
                npe=__version__, git_commit=commit,
                gpu=torch.cuda.get_device_name(0) if cuda else None,
                cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads())


# ----------------------------------------------------------------------------- the whole run
@contextlib.contextmanager
def _quiet(log_file: Path, verbose: bool):
    """Send MMEngine's console output of a job to its log file (unless ``verbose``)."""
    if verbose:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, 'a') as handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        yield


def run_recipe(recipe: Recipe | str | os.PathLike, variants: Sequence[str] | None = None,
               seeds: Sequence[int] | None = None, data_root: str | os.PathLike | None = None,
               results_dir: str | os.PathLike | None = None, work_dir: str | os.PathLike | None = None,
               mirror: str | None = None, offline: bool = False, dry_run: bool = False,
               tables: bool = True, verbose: bool = False) -> int:
    """Run a recipe end to end, what ``npe-repro`` does: data, trainings, evaluations, result files.

    Args:
        recipe: a recipe name (``recipes/<name>.yaml``), a path to a YAML file, or a loaded
            :class:`~npe.recipes.Recipe`.
        variants, seeds: only these (default: all of the recipe's).
        data_root, results_dir, work_dir: default ``$NPE_DATA_ROOT`` / ``$NPE_RESULTS_DIR`` /
            ``$NPE_WORK_DIR``, else ``segmentation/data``, ``results``, ``work_dirs`` of the checkout.
        mirror, offline: where data and checkpoints come from (see ``npe-data``).
        dry_run: only print the plan (runs, iterations, data to fetch, cost); nothing is written.
        tables: rebuild the recipe's tables and figures at the end (and print the Markdown table).
        verbose: show MMEngine's log on the console instead of each work dir's ``npe-repro.log``.

    Returns:
        The number of training jobs that failed (each recorded as ``failed`` result files).

    Raises:
        npe.errors.RecipeError: the recipe is invalid or names an unknown variant.
        npe.errors.DataError: data or the initial checkpoint cannot be had (one message lists all).

    Finished runs are skipped; an interrupted training resumes from its last checkpoint.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    root = paths.data_root(data_root)
    results = paths.results_dir(results_dir)
    jobs = plan_runs(recipe, variants, seeds, work_dir)
    seen = set()
    for job in jobs:  # every distinct configuration builds (typed options, seeds) before any work
        if job.train_key not in seen:
            seen.add(job.train_key)
            job_train_config(recipe, job, root, None, quiet=True)
    if dry_run:
        print(describe_plan(recipe, jobs, root, results))
        return 0
    for folder, flag in ((results, '--results-dir'), (paths.work_root(work_dir), '--work-dir'),
                         (root, '--data-root')):
        check_output_dir(folder, flag)
    checkpoint = prepare_inputs(recipe, root, paths.mirror(mirror), offline)
    share, log_prior = counted_log_prior(recipe, root)
    env = environment()
    failures = 0
    # A job another driver is training is put off, then waited for at the end (each job's lock).
    waiting: list[tuple[int, TrainJob]] = []
    for i, job in enumerate(jobs, 1):
        failures += _locked_job(recipe, job, f'[{i}/{len(jobs)}]', root, results, checkpoint, share,
                                log_prior, env, verbose, waiting=waiting, index=i)
    for i, job in waiting:
        failures += _locked_job(recipe, job, f'[{i}/{len(jobs)}]', root, results, checkpoint, share,
                                log_prior, env, verbose)
    if tables:
        write_tables(recipe, results)
    return failures


def _todo(recipe: Recipe, job: TrainJob, results: Path) -> set:
    return {(v, s) for v, s in job.expected(recipe)
            if not is_done(result_path(results, recipe.name, v, job.seed, s))}


def _locked_job(recipe, job, tag, root, results, checkpoint, share, log_prior, env, verbose,
                waiting: list | None = None, index: int = 0) -> int:
    """One job under its lock: skipped when done, put off into ``waiting`` (when given) or waited
    for when another driver holds the lock; returns 1 if it failed, else 0."""
    from npe.locking import job_lock, try_acquire

    names = ', '.join(v.name for v in job.variants)
    if not _todo(recipe, job, results):
        print(f'{tag} {names} seed {job.seed}: done, skipped')
        return 0
    lock = job_lock(job.work_dir)
    if not try_acquire(lock):
        if waiting is not None:
            print(f'{tag} {names} seed {job.seed}: another npe-repro is training it ({lock.lock_file}); '
                  'going on with the other runs first', flush=True)
            waiting.append((index, job))
            return 0
        print(f'{tag} {names} seed {job.seed}: waiting for the other npe-repro to finish it', flush=True)
        lock.acquire()
    try:
        todo = _todo(recipe, job, results)
        if not todo:
            print(f'{tag} {names} seed {job.seed}: done by another npe-repro, skipped')
            return 0
        return _run_job(recipe, job, tag, names, todo, root, results, checkpoint, share, log_prior,
                        env, verbose)
    finally:
        lock.release()


def _run_job(recipe, job, tag, names, todo, root, results, checkpoint, share, log_prior, env,
             verbose) -> int:
    """Train (or resume) one job, evaluate it, write its result files; 1 if it failed, else 0."""
    from npe.training import readable_checkpoint, set_aside

    print(f'{tag} {names} seed {job.seed}: training in {job.work_dir}', flush=True)
    try:
        cfg = job_train_config(recipe, job, root, checkpoint, quiet=True)
        if job.work_dir.is_dir():  # checkpoints cut off by a kill: out of the way, one line each
            set_aside(readable_checkpoint(job.work_dir)[1])
        with _quiet(job.work_dir / 'npe-repro.log', verbose):
            record = train_job(cfg, job.work_dir)
            items = evaluate_job(recipe, job, record, log_prior, todo)
    except UserError:
        raise
    except Exception as exc:  # one broken run must not hide the others; it is recorded
        message = f'{type(exc).__name__}: {exc}'.splitlines()[0]
        print(f'{tag} {names} seed {job.seed}: FAILED ({message}); see {job.work_dir / "npe-repro.log"}',
              file=sys.stderr)
        for v, s in sorted(todo, key=str):
            write_failure(results, recipe, train_key=job.train_key, protocol=job.protocol,
                          seed=job.seed, variant=v, s=s, error=message, env=env)
        return 1
    loss = training_loss(job.work_dir)
    for item in items:
        write_result(results, recipe, train_key=job.train_key, protocol=job.protocol, seed=job.seed,
                     item=item, record=record, share=share, loss=loss, env=env)
    print(f'{tag} {names} seed {job.seed}: {len(items)} result files written '
          f'(training {record["wall_time_s"]:.0f} s)', flush=True)
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
