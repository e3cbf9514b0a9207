"""``python -m npe.cli.recipes [NAME_OR_PATH ...]``: validate recipes (default: all), one line each."""
from __future__ import annotations

from typing import Sequence

from npe.cli.common import make_parser
from npe.errors import cli_entry


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    """Validate the given recipes (default: every recipe); exit status 2 at the first invalid one."""
    from npe.recipes import display_path, list_recipes, load_recipe

    parser = make_parser("python -m npe.cli.recipes", "Validate recipes.")
    parser.add_argument("recipes", nargs="*", help="names or .yaml paths (default: every recipe)")
    args = parser.parse_args(argv)
    for item in args.recipes or list_recipes():
        r = load_recipe(item)
        runs = len({(v.train_key, seed) for v in r.variants for seed in r.seeds})
        print(f"{display_path(r.path)}: ok ({len(r.variants)} variants, {runs} trainings, "
              f"{len(r.expected_results())} result files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
