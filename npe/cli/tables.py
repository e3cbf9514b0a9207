"""``npe-tables``: rebuild results/tables/ (Markdown, LaTeX, CSV, figures) from result files alone."""
from __future__ import annotations

import argparse
from typing import Sequence

from npe import paths
from npe.cli.common import make_parser
from npe.errors import UserError, cli_entry
from npe.files import check_output_dir


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``npe-tables``."""
    p = make_parser(
        "npe-tables",
        "Rebuild the tables and figures of results/tables/ from the result files "
        "(<results>/<recipe>/*.json) and the recipes. Deterministic: rebuilding from the "
        "same files gives the same bytes.")
    p.add_argument("--results-dir", metavar="DIR",
                   help="folder holding <recipe>/ result folders (default: $NPE_RESULTS_DIR or <repo>/results)")
    p.add_argument("--out-dir", metavar="DIR", help="where tables go (default: <results-dir>/tables)")
    p.add_argument("--recipe", metavar="NAME", nargs="+", action="extend", default=[],
                   help="only these recipes (names or .yaml paths); a recipe without results gives a "
                        "table of missing runs (default: every recipe that has result files)")
    p.add_argument("--no-figures", action="store_true", help="write tables only")
    p.add_argument("-q", "--quiet", action="store_true", help="do not list the files written")
    p.add_argument("--compare", metavar="OTHER_RESULTS_DIR",
                   help="reproduction check: compare every row and metric with the result files in "
                        "OTHER_RESULTS_DIR/<recipe>/ against the recipe's tolerance; print a side-by-side "
                        "table; exit status 1 naming the rows out of tolerance")
    return p


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``npe-tables``; exit status 0, or 2 on bad input."""
    args = build_parser().parse_args(argv)
    from npe import tables  # noqa: PLC0415 - keep --help fast

    results = paths.results_dir(args.results_dir)
    from npe.results import TABLES_DIRNAME  # noqa: PLC0415

    check_output_dir(results, "--results-dir")   # a file or a dangling link: one line, before any work
    if not results.is_dir():   # a typo would otherwise become a new, empty results folder
        raise UserError(f"--results-dir {results} does not exist; give the folder npe-repro wrote "
                        "(<results>/<recipe>/*.json)")
    check_output_dir(args.out_dir or results / TABLES_DIRNAME, "--out-dir" if args.out_dir else "--results-dir")
    if args.compare:   # the other side's files are read before anything is written here
        from npe.compare import check_other_side

        check_other_side(results, args.compare, args.recipe)
    written = tables.build(results, args.out_dir, recipes=args.recipe, figures=not args.no_figures)
    if not args.quiet:
        for path in written:
            print(path)
    if args.compare:
        from npe.compare import compare_and_report

        return compare_and_report(results, args.compare, args.recipe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
