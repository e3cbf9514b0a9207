"""``npe-repro RECIPE``: run one recipe of the paper (or a built-in one) end to end."""
from __future__ import annotations

import argparse
from typing import Sequence

from npe.cli.common import add_batch_per_process, make_parser
from npe.errors import cli_entry


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        'npe-repro',
        'Run a recipe: prepare its data, train every distinct configuration once per seed, '
        'evaluate each at every scale factor (and counted-prior logit adjustment of the '
        'baseline), write one result file per (variant, seed, s) and the recipe\'s tables. '
        'Running it again skips finished runs and resumes interrupted ones.',
        epilog='Recipes: recipes/*.yaml (npe-repro --list). Example: npe-repro longtail_synth. '
               'Scale-out: --gpus N trains each run on N processes through torchrun (DDP) with the '
               "paper's total batch of 16 split over them (16/N each) unless --batch-per-process B; "
               '--slurm [SBATCH OPTIONS] submits the trainings as one job array and the tables as a '
               'job after it (e.g. npe-repro stare_unet --gpus 2 --slurm --partition gpu --time 4:00:00).')
    parser.add_argument('recipe', nargs='?', help='recipe name (recipes/<name>.yaml) or a YAML path')
    parser.add_argument('--list', action='store_true', help='list the recipes and exit')
    parser.add_argument('--variants', nargs='+', metavar='NAME', help='only these variants')
    parser.add_argument('--seeds', nargs='+', type=int, metavar='SEED', help='only these seeds')
    parser.add_argument('--data-root', help='data root (default $NPE_DATA_ROOT or segmentation/data)')
    parser.add_argument('--results-dir', help='results folder (default $NPE_RESULTS_DIR or results/)')
    parser.add_argument('--work-dir', help='root of the training work dirs (default $NPE_WORK_DIR or '
                                           'work_dirs/)')
    parser.add_argument('--mirror', metavar='BASE_URL',
                        help='fetch every file by name from BASE_URL (default $NPE_MIRROR)')
    parser.add_argument('--offline', action='store_true',
                        help='never use the network; use verified files placed by hand')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the plan (runs, iterations, data and checkpoints) with an estimate '
                             'of training time on this machine and of disk, and exit')
    parser.add_argument('--verbose', action='store_true',
                        help="show MMEngine's training log on the console (default: in each work dir's "
                             'npe-repro.log; a progress line per training is shown either way)')
    parser.add_argument('--no-tables', action='store_true', help='do not rebuild tables at the end')
    parser.add_argument('--gpus', type=int, default=0, metavar='N',
                        help='train each run on N processes through torchrun and MMEngine\'s pytorch '
                             'launcher (one per GPU; gloo on a CPU machine); the total batch 16 is '
                             'split over them (default 0: one process, no torchrun)')
    add_batch_per_process(parser)
    parser.add_argument('--amp', action='store_true',
                        help="mixed precision through MMEngine's AmpOptimWrapper (CUDA GPUs only)")
    parser.add_argument('--amp-dtype', default='auto', choices=('auto', 'float16', 'bfloat16'),
                        help='auto = bfloat16 where the GPU has it, else float16 with loss scaling')
    parser.add_argument('--task', type=int, metavar='I',
                        help='run only training I (0-based) of the plan, without tables: what one '
                             'task of the --slurm job array runs')
    parser.add_argument('--slurm', nargs=argparse.REMAINDER, metavar='SBATCH_OPTION',
                        help='submit to Slurm instead of running here: one job array (a task per '
                             'training) and the tables job after it (afterany); everything after '
                             '--slurm goes to sbatch, so put it last')
    parser.add_argument('--compare', metavar='OTHER_RESULTS_DIR',
                        help='afterwards, check the results against OTHER_RESULTS_DIR/<recipe>/ (see '
                             'npe-tables --compare); exit status 1 naming rows out of tolerance')
    parser.add_argument('--per-s', action='store_true',
                        help='evaluate one s at a time instead of one pass per split (for checking)')
    return parser


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``npe-repro`` and ``python -m npe``."""
    from npe.errors import UserError
    from npe.recipes import list_recipes, load_recipe

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for name in list_recipes():
            recipe = load_recipe(name, resolve=False)
            print(f'{name:24s} {recipe.title}')
        return 0
    if not args.recipe:
        raise UserError('no recipe given; try npe-repro longtail_synth (npe-repro --list shows all)')
    if args.compare and (args.slurm is not None or args.task is not None):
        # the results are written by the job array later; comparing now would compare nothing
        raise UserError(f'--compare is not run with {"--slurm" if args.slurm is not None else "--task"}: '
                        'the job array writes the results later; once its jobs are done run npe-tables '
                        f'--results-dir RESULTS --recipe {args.recipe} --compare {args.compare}')
    recipe = load_recipe(args.recipe)
    if args.compare:  # the other side's files are checked before the work, not after it
        from npe.results import check_recipe_folder

        check_recipe_folder(args.compare, recipe)
    from npe.driver_options import DriverOptions
    from npe.run import run_recipe

    from npe.cli.progress import showing_progress

    # --verbose: MMEngine's own lines on the console would cut into a redrawn line; plain lines then
    with showing_progress(live=not args.verbose):
        outcome = run_recipe(recipe, DriverOptions.from_namespace(args))
    status = 0 if outcome.ok else 1
    if args.compare and not args.dry_run and args.slurm is None and args.task is None:
        from npe import paths
        from npe.compare import compare_and_report

        status = max(status, compare_and_report(paths.results_dir(args.results_dir), args.compare,
                                                [str(recipe.path)]))
    return status


if __name__ == '__main__':
    raise SystemExit(main())
