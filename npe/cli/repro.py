"""``npe-repro RECIPE``: run one recipe of the paper (or a built-in one) end to end."""
from __future__ import annotations

import argparse
from typing import Sequence

from npe.cli.common import make_parser
from npe.errors import cli_entry


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        'npe-repro',
        'Run a recipe: prepare its data, train every distinct configuration once per seed, '
        'evaluate each at every scale factor (and counted-prior logit adjustment of the '
        'baseline), write one result file per (variant, seed, s) and the recipe\'s tables. '
        'Running it again skips finished runs and resumes interrupted ones.',
        epilog='Recipes: recipes/*.yaml (npe-repro --list). Example: npe-repro longtail_synth')
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
                        help='print the plan (runs, iterations, data and checkpoints, cost) and exit')
    parser.add_argument('--verbose', action='store_true',
                        help="show MMEngine's training log on the console (default: in each work dir's "
                             'npe-repro.log)')
    parser.add_argument('--no-tables', action='store_true', help='do not rebuild tables at the end')
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
    recipe = load_recipe(args.recipe)
    from npe.run import run_recipe

    failures = run_recipe(recipe, variants=args.variants, seeds=args.seeds, data_root=args.data_root,
                          results_dir=args.results_dir, work_dir=args.work_dir, mirror=args.mirror,
                          offline=args.offline, dry_run=args.dry_run, tables=not args.no_tables,
                          verbose=args.verbose, per_s=args.per_s)
    status = 1 if failures else 0
    if args.compare and not args.dry_run:
        from npe import paths
        from npe.cli.tables import compare_and_report

        status = max(status, compare_and_report(paths.results_dir(args.results_dir), args.compare,
                                                [str(recipe.path)]))
    return status


if __name__ == '__main__':
    raise SystemExit(main())
