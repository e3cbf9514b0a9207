"""The jobs of a recipe run: the plan (one :class:`TrainJob` per distinct training configuration and
seed), the config of one job, its training, and its evaluation at every (row, s) it owns.

Reads top to bottom: :func:`plan_runs`, :func:`describe_plan`, :func:`job_train_config`,
:func:`train_job`, :func:`job_rows`, :func:`choose_scales`, :func:`evaluate_job`. Driving them over a
whole recipe (locks, result files, failures, Slurm) is :mod:`npe.run`; training and evaluation
themselves are :mod:`npe.training` and :mod:`npe.evaluation`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from npe import datasets, paths, provenance
from npe.constants import AUTO, COUNTED_LA, MAIN_ONLY, TRAIN_MARKER
from npe.errors import RecipeError, UserError
from npe.files import write_json_atomic
from npe.logs import held_messages
from npe.recipes import Recipe, Variant
from npe.results import is_done, result_path


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

    def pending(self, recipe: Recipe, results_dir: Path) -> set[tuple[str, float | str]]:
        """The (variant, s) of :meth:`expected` whose result file in ``results_dir`` is not done
        (:func:`npe.results.is_done`): the one answer the plan's counts and the driver's skips share."""
        return {(v, s) for v, s in self.expected(recipe)
                if not is_done(result_path(results_dir, recipe.name, v, self.seed, s))}


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
    cfg = job_train_config(recipe, jobs[0], data_root, None, quiet=True, gpus=gpus,
                           batch_per_process=batch_per_process) if jobs else None
    iters = int(cfg.train_cfg.max_iters) if cfg is not None else 0
    split = dict(cfg.npe.distributed) if cfg is not None else dict(world_size=1, total_batch=0)
    batch = int(split['total_batch'])
    lines = [f'recipe {recipe.name}: {recipe.title}',
             f'  file {recipe.path} (sha256 {recipe.sha256[:12]}), protocol {recipe.protocol}, '
             f'base config {recipe.base_config}']
    if recipe.own_data is not None:
        own = recipe.own_data
        lines.append(f'  data: {recipe.dataset} ({own.config}) -> {own.data_root} (your own; not prepared by the kit)')
    else:
        spec = datasets.get(recipe.dataset)
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
        done = len(expected) - len(job.pending(recipe, results_dir))
        n_done += done
        n_eval += len(expected)
        v = job.representative
        names = ', '.join(x.name for x in job.variants)
        lines.append(f'    seed {job.seed}: [{names}] num_pem={v.num_pem} pem_type={v.pem_type} '
                     f'freeze_backbone={v.freeze_backbone} freeze_decode={v.freeze_decode} '
                     f'protocol={v.protocol} -> {len(expected)} result files ({done} done)')
    lines.append(f'  cost: {len(jobs) * iters} training iterations ({len(jobs) * iters * batch} images), '
                 f'{n_eval} result files ({n_done} already done), results in {results_dir / recipe.name}')
    if cfg is not None:   # time on this machine's device and disk (npe.estimates), marked as estimates
        from npe.estimates import describe_cost
        lines += describe_cost(recipe, cfg, len(jobs), data_root, gpus)
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- training
def job_train_config(recipe: Recipe, job: TrainJob, data_root: Path, checkpoint: Path | None,
                     quiet: bool = False, gpus: int = 0, **launch_options):
    """The MMSeg config of one training job: ``npe-train``'s config with the recipe's options.

    ``gpus`` N >= 1: built for N torchrun processes (:func:`npe.training.train_launched`);
    ``launch_options``: ``batch_per_process``, ``amp``, ``amp_dtype`` of ``build_train_config``.
    """
    from npe.training import build_train_config

    variant = job.representative
    options = dict(recipe.cfg_options)
    options.update(variant.cfg_options)
    if recipe.max_iters:
        options.setdefault('train_cfg.max_iters', recipe.max_iters)
    with held_messages() as held:
        held.drop = quiet   # the driver does not repeat the recipe's protocol warnings for each run
        cfg = build_train_config(
            str(recipe.base_config_path or recipe.base_config), load_from=str(checkpoint) if checkpoint else None,
            work_dir=job.work_dir, freeze_backbone=variant.freeze_backbone,
            freeze_decode=variant.freeze_decode, num_pem=variant.num_pem, pem_type=variant.pem_type,
            protocol=variant.protocol, cfg_options=options, seed=int(job.seed), resume=True,
            dataset_folder=(recipe.own_data.data_root if recipe.own_data is not None
                            else datasets.get(recipe.dataset).path(data_root)),
            own_data=recipe.own_data, check_data_folders=False,
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


def train_job(cfg, work_dir: Path, gpus: int = 0, log_file: Path | None = None) -> dict:
    """Train (resuming from the last checkpoint in ``work_dir`` if any); return the train record.

    ``gpus`` N >= 1: through torchrun on N processes. ``log_file``: MMEngine's log (the torchrun
    processes' whole output) appended there, not on the console. A finished training leaves
    ``npe_train_done.json``; a second call returns that record at once.
    """
    from npe.training import run_training, train_launched

    marker = work_dir / TRAIN_MARKER
    if marker.is_file():
        return json.loads(marker.read_text())
    resumed_from = cfg.load_from if cfg.get('resume') else None
    if not gpus:
        out = run_training(cfg, console=log_file is None, log_file=log_file)
    elif log_file is None:
        out = train_launched(cfg, gpus)
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, 'a') as log:
            out = train_launched(cfg, gpus, log=log)
    # the whole training's time: a resumed run adds the earlier parts (recorded in its checkpoints)
    wall = out.get('wall_time_total_s', out['wall_time_s'])
    record = dict(iterations=out['iterations'], wall_time_s=round(wall, 2),
                  wall_time_this_part_s=round(out['wall_time_s'], 2),
                  resumed_from=resumed_from, checkpoint=out['checkpoint'], finished=provenance.utc_now(),
                  distributed=out.get('distributed'), device=out.get('device'))
    write_json_atomic(marker, record)
    return record


# ----------------------------------------------------------------------------- evaluation
def _holdout_split(recipe: Recipe) -> str:
    if recipe.own_data is not None and recipe.own_data.has_holdout:
        return 'holdout'   # the training config's npe_holdout (npe.own_data.set_holdout)
    split = None if recipe.own_data is not None else datasets.get(recipe.dataset).holdout_split
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
                  per_s: bool = False, log_file: Path | None = None) -> dict[str, tuple[float, dict]]:
    """Pick s per adjustment kind on the holdout split (never the validation set), by the recipe's
    auto metric, all kinds and candidates in one pass; ties go to the smaller s.
    Returns ``{kind: (s, {"metric", "split", "candidates": {label: score}})}``."""
    from npe.evaluation import evaluate

    if not kinds:
        return {}
    auto = recipe.auto_scale
    split = _holdout_split(recipe)
    rows = evaluate(work_dir, checkpoint=checkpoint, data_split=split, record_prior=False,
                    log_prior=log_prior, per_s=per_s, quiet=log_file is not None, log_file=log_file,
                    adjustments=[(kind, c) for kind in kinds for c in auto.candidates])
    from npe.auto_scale import pick
    return pick(rows, kinds, auto.candidates, auto.metric, split)


def evaluate_job(recipe: Recipe, job: TrainJob, record: dict, log_prior: list[float],
                 todo: set, per_s: bool = False, keep_predictions: Sequence[str] = (),
                 log_file: Path | None = None) -> list[dict]:
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
                           sorted({r.kind for r in rows if r.s == AUTO}), per_s=per_s, log_file=log_file)
    value = {id(r): chosen[r.kind][0] if r.s == AUTO else float(r.s) for r in rows}
    blocks = list(dict.fromkeys((r.kind, value[id(r)]) for r in rows))
    found = evaluate(job.work_dir, checkpoint=checkpoint, adjustments=blocks, per_s=per_s,
                     record_prior=any(v.num_pem > 0 for v in job.variants), log_prior=log_prior,
                     keep_predictions=keep_predictions, quiet=log_file is not None, log_file=log_file)
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
