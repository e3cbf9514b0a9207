"""Reproduction check: a recipe's results against another results folder (``npe-tables --compare``,
``npe-repro --compare``: :func:`compare_and_report`).

Both sides are summarised from their result files alone (:func:`npe.stats.summarize`); every row of
the recipe and every metric it reports is compared mean against mean, and a row is out of tolerance
when ``|this - other| > recipe.tolerance`` (metric points) for any metric. A row that has results on
one side only, or failed runs, cannot be compared and counts as a failure too (a check that silently
skips rows would pass on an empty folder).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tabulate import tabulate

from npe.errors import ResultFileError
from npe.recipes import Recipe, load_recipe
from npe.results import discover, read_results
from npe.stats import Stat, summarize


@dataclass
class Comparison:
    """One (row, metric): both sides' mean ± std and n, the difference and the verdict."""

    variant: str
    s_label: str
    metric: str
    this: Stat
    other: Stat
    diff: float | None
    tolerance: float
    status: str  # 'ok' | 'out' | 'missing'

    @property
    def row(self) -> str:
        return f'{self.variant} s={self.s_label}'


def compare(recipe: Recipe, results_dir: str | Path, other_dir: str | Path) -> list[Comparison]:
    """Compare ``recipe``'s results in ``results_dir`` with those in ``other_dir`` (same recipe name)."""
    other_folder = Path(other_dir) / recipe.name
    if not other_folder.is_dir() or not any(other_folder.glob('*.json')):
        raise ResultFileError(f'--compare: {other_folder} holds no result files of {recipe.name}; give the '
                              'results folder that holds <recipe>/ (e.g. a checkout\'s results/)')
    mine = summarize(recipe, read_results(results_dir, recipe.name, recipe.dataset))
    theirs = summarize(recipe, read_results(other_dir, recipe.name, recipe.dataset))
    other_rows = {(r.variant, r.s_label): r for r in theirs.rows if r.in_recipe}
    out = []
    for row in mine.rows:
        if not row.in_recipe:
            continue
        other = other_rows.get((row.variant, row.s_label))
        for metric in recipe.metrics:
            a = row.stats[metric]
            b = other.stats[metric] if other is not None else Stat(None, None, 0)
            complete = (a.mean is not None and b.mean is not None and not row.failed_seeds
                        and not (other and other.failed_seeds))
            diff = a.mean - b.mean if complete else None
            status = 'missing' if diff is None else ('out' if abs(diff) > recipe.tolerance + 1e-9 else 'ok')
            out.append(Comparison(row.variant, row.s_label, metric, a, b, diff, recipe.tolerance, status))
    return out


def _cell(stat: Stat) -> str:
    if stat.mean is None:
        return '—'
    std = '—' if stat.std is None else f'{stat.std:.2f}'
    return f'{stat.mean:.2f} ± {std} (n={stat.n})'


def render(recipe: Recipe, comparisons: Sequence[Comparison], this_dir: str | Path,
           other_dir: str | Path) -> str:
    """The side-by-side Markdown table and a one-line verdict."""
    rows = [[c.variant, c.s_label, c.metric, _cell(c.this), _cell(c.other),
             '—' if c.diff is None else f'{c.diff:+.2f}', f'{c.tolerance:g}',
             {'ok': 'ok', 'out': 'OUT', 'missing': 'not comparable'}[c.status]] for c in comparisons]
    table = tabulate(rows, headers=['variant', 's', 'metric', f'this ({this_dir})', f'other ({other_dir})',
                                    'diff', 'tolerance', 'status'],
                     tablefmt='github', disable_numparse=True)
    bad = failing_rows(comparisons)
    verdict = (f'{recipe.name}: every row within ±{recipe.tolerance:g} points of {other_dir}' if not bad
               else f'{recipe.name}: {len(bad)} row(s) out of tolerance or not comparable: {", ".join(bad)}')
    return f'## {recipe.name}: reproduction check\n\n{table}\n\n{verdict}\n'


def failing_rows(comparisons: Sequence[Comparison]) -> list[str]:
    """``'<variant> s=<s> <metric> (<why>)'`` for every comparison that is not ok, in table order."""
    out = []
    for c in comparisons:
        if c.status == 'out':
            out.append(f'{c.row} {c.metric} (diff {c.diff:+.2f} > {c.tolerance:g})')
        elif c.status == 'missing':
            out.append(f'{c.row} {c.metric} (missing or failed on one side)')
    return out


def compare_and_report(results: str | Path, other: str | Path, recipe_names: Sequence[str]) -> int:
    """Print the reproduction check of each recipe (every recipe in ``results`` when none is named);
    1 (and the failing rows on stderr) if any fails, else 0."""
    import sys

    status = 0
    for name in list(recipe_names) or discover(results):
        recipe = load_recipe(name, resolve=False)
        found = compare(recipe, results, other)
        print(render(recipe, found, results, other))
        bad = failing_rows(found)
        if bad:
            status = 1
            print(f"npe-tables: {recipe.name} does not reproduce {other}: {'; '.join(bad)}", file=sys.stderr)
    return status


def check_other_side(results, other, recipe_names: Sequence[str]) -> None:
    """Raise the one-line error of a foreign, mislabelled or broken result file in
    ``other/<recipe>/`` (as :func:`compare_and_report` would, but before any table is written)."""
    from npe.results import check_recipe_folder

    for name in list(recipe_names) or discover(results):
        recipe = load_recipe(name, resolve=False)
        check_recipe_folder(other, recipe)
        read_results(other, recipe.name, recipe.dataset)
