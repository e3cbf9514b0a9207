"""Aggregate result files (``npe-result/1``) into tables: Markdown, LaTeX and CSV, one set per recipe.

Inputs are the result files under ``<results>/<recipe>/*.json`` (read by :mod:`npe.results`) and the
recipe YAML (variant order, expected runs, paper numbers); the numbers come from
:func:`npe.stats.summarize`. Output is a pure function of them: inputs are sorted, floats have fixed
formats and nothing time-dependent is written, so deleting ``results/tables`` and rebuilding gives
byte-identical files.
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tabulate import tabulate

from npe.constants import AUTO
from npe.files import clean_stale_temps, write_text_atomic
from npe.recipes import Recipe, list_recipes, load_recipe, scale_label
from npe.results import TABLES_DIRNAME, discover, read_results
from npe.paired import CONFIDENCE, MAX_SEEDS, Paired
from npe.stats import THIRDS, Row, Stat, Summary, prior_text, summarize

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# formatting

DASH = "—"


def _f(value: float | None, fmt: str = ".2f") -> str:
    if value is None:
        return DASH
    text = format(value, fmt)
    # a value that rounds to zero should not keep a minus sign the rounding made meaningless
    return text.lstrip("-") if float(text) == 0 else text


def _signed(value: float | None) -> str:
    if value is None:
        return DASH
    text = format(value, "+.2f")
    return "+0.00" if float(text) == 0 else text


def _stat_cell(stat: Stat, row: Row) -> str:
    if stat.n == 0:
        if row.n:
            return DASH  # runs present but this metric was not recorded
        return "failed" if row.failed_seeds else "missing"
    cell = f"{_f(stat.mean)} ± {_f(stat.std)}"
    return cell if stat.n == row.n else f"{cell} (n={stat.n})"


def _seeds(seeds: Sequence[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def _row_notes(row: Row) -> str:
    parts = []
    if row.missing_seeds:
        parts.append(f"missing: {len(row.missing_seeds)} (seed {_seeds(row.missing_seeds)})")
    if row.failed_seeds:
        parts.append(f"failed: {len(row.failed_seeds)} (seed {_seeds(row.failed_seeds)})")
    if row.other_version:
        parts.append(f"{row.other_version} from another recipe version")
    if not row.in_recipe:
        parts.append("not in recipe")
    return "; ".join(parts)


def _chosen_s(row: Row) -> str:
    if row.s != AUTO:
        return ""
    if not row.chosen_s:
        return DASH
    lo, hi = row.chosen_s[0], row.chosen_s[-1]
    if lo == hi:
        return scale_label(lo)
    return f"{float(np.mean(row.chosen_s)):.2f} ({scale_label(lo)}–{scale_label(hi)})"


def _has_paper(summary: Summary) -> bool:
    return any(v is not None for r in summary.rows for v in r.paper.values())


def table_rows(summary: Summary) -> tuple[list[str], list[list[str]]]:
    """Headers and text cells of the main table (shared by Markdown and LaTeX)."""
    recipe = summary.recipe
    has_auto = any(r.s == AUTO for r in summary.rows)
    has_paper = _has_paper(summary)
    headers = ["variant", "method", "s"] + (["s chosen"] if has_auto else [])
    for m in recipe.metrics:
        headers += [m, f"Δ {m}"]
        if has_paper:
            headers += [f"paper {m}", f"diff {m}"]
    if summary.groups is not None:
        headers += [f"{t} mIoU" for t in THIRDS]
    headers += ["n", "notes"]

    body = []
    base = recipe.baseline
    for row in summary.rows:
        is_base = base is not None and row.variant == base.name
        cells = [row.variant, row.method, DASH if is_base else row.s_label]
        if has_auto:
            cells.append(_chosen_s(row))
        for m in recipe.metrics:
            cells += [_stat_cell(row.stats[m], row), _signed(row.delta[m])]
            if has_paper:
                diff = _signed(row.diff[m])
                cells += [_f(row.paper.get(m)), f"{diff} !" if row.flagged[m] else diff]
        if summary.groups is not None:
            cells += [f"{_f(t.mean)} ± {_f(t.std)}" if t.n else DASH
                      for t in (row.thirds or [Stat(None, None, 0)] * 3)]
        cells += [str(row.n), _row_notes(row)]
        body.append(cells)
    return headers, body


#: The widest line :func:`render_summary` prints (a terminal's 100 columns).
SUMMARY_WIDTH = 100


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def render_summary(summary: Summary, width: int = SUMMARY_WIDTH) -> str:
    """The compact summary ``npe-repro`` prints at the end (the full tables stay in the files): per
    row method, s (the chosen s of ``auto``), the first metric's mean ± std, its Δ to the baseline,
    tail-third mIoU and n; every line at most ``width`` columns."""
    recipe = summary.recipe
    metric = recipe.metrics[0]
    base = recipe.baseline
    body = []
    for row in summary.rows:
        s = DASH if base is not None and row.variant == base.name else row.s_label
        if row.s == AUTO and row.chosen_s:
            s = f"auto ({_chosen_s(row).split(' ')[0]})"   # the mean chosen s; its range is in the files
        tail = row.thirds[-1] if row.thirds else None
        body.append([_clip(row.variant, 18), _clip(row.method, 28), s, _stat_cell(row.stats[metric], row),
                     _signed(row.delta[metric]), f"{_f(tail.mean)} ± {_f(tail.std)}" if tail and tail.n else DASH,
                     str(row.n)])
    headers = ["row", "method", "s", metric, f"Δ {metric}", "tail mIoU", "n"]
    # laid out here, not by tabulate: its header padding costs columns a terminal does not have
    widths = [max(len(c) for c in column) for column in zip(headers, *body)]
    table = [headers, ["-" * w for w in widths]] + body
    lines = [_clip(f"{recipe.name}: {metric} %, mean ± std over seeds; Δ to the baseline; tail: rarest "
                   "third", width)]
    lines += [_clip("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip(), width) for cells in table]
    return "\n".join(lines)


def _needed(p: Paired) -> str:
    if p.needed is None:
        return DASH
    return f"> {MAX_SEEDS}" if p.needed > MAX_SEEDS else str(p.needed)


def paired_rows(summary: Summary, metric: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Headers and text cells of the paired-comparison table for one metric (default: the recipe's
    primary metric), shared by Markdown and LaTeX."""
    metric = metric or summary.recipe.primary_metric
    headers = ["question", "A", "B", "n", f"A − B per seed ({metric})", "mean A − B", f"{CONFIDENCE:.0%} CI",
               "verdict", "seeds to separate"]
    base = summary.recipe.baseline

    def side(variant: str, s: object) -> str:   # the baseline has no s (the main table shows "—")
        return variant if base is not None and variant == base.name else f"{variant}, s={s}"

    body = []
    for c in summary.comparisons:
        p = c.paired[metric]
        ci = f"[{_signed(p.low)}, {_signed(p.high)}]" if p.low is not None else DASH
        body.append([c.question, side(*c.a), side(*c.b), str(p.n),
                     " ".join(_signed(d) for d in p.diffs) or DASH, _signed(p.mean), ci, p.verdict,
                     _needed(p)])
    return headers, body


def _paired_explanations(summary: Summary) -> list[str]:
    metric = summary.recipe.primary_metric
    return [
        f"Paired comparisons ({metric}, points): A − B per seed over the seeds both rows have (runs with "
        "one seed share data order and initialisation; post-hoc rows share the trained model itself), "
        f"their mean and the {CONFIDENCE:.0%} t interval of the mean over seeds (scipy.stats.ttest_1samp on the "
        "differences; docs/tables.md says why seeds and not images).",
        "verdict: 'better' / 'worse' when the interval excludes 0, 'not separated at n seeds' when it "
        "does not, 'equal' when every difference is 0. No correction for the "
        f"{len(summary.comparisons)} comparisons of this table: where two rows do not differ, about one "
        "comparison in twenty still comes out separated by chance.",
        "seeds to separate: the smallest number of seeds at which a t interval of the observed spread "
        "of the differences would exclude 0 if the mean difference stayed as observed (plugged-in "
        "values, about even odds, not a power calculation); — where no spread or no difference was "
        "observed.",
    ]


def _explanations(summary: Summary) -> list[str]:
    recipe = summary.recipe
    lines = [
        "Metrics in percent: mean ± sample std (ddof=1) over seeds, `—` for the std when n = 1; "
        "n counts the runs present and ok; missing and failed runs are listed in notes.",
        "Δ: difference of the mean to the baseline (0 PEMs, same protocol; s has no effect without PEMs, "
        "so it is evaluated at s = 1 only).",
        "counted LA: the baseline's logits minus log(training pixel share) / s, applied post hoc "
        "(no training): the comparator NPE-LA has to beat.",
    ]
    derived = recipe.derived_rows()
    if any(r.variant in derived for r in summary.rows):
        names = ", ".join(f"`{n}`" for n in derived)
        lines.append(f"Decomposition ({names}; same trained model, no extra training): baseline → "
                     "main head only (s = inf) is what training with PEMs did to the representation; "
                     "main head only → NPE-LA is what the learned prior adds; counted LA of the NPE model "
                     "(its main head minus log training share / s) against NPE-LA at the same s says "
                     "whether the learned prior beats the counted one on the same model.")
    if summary.groups is not None:
        sizes = "/".join(str(len(g)) for g in summary.groups)
        lines.append(f"head / middle / tail mIoU: mean per-class IoU over the thirds ({sizes} classes) of "
                     "classes ranked by training pixel share, most frequent first; NaN classes ignored; "
                     "mean ± std over seeds.")
    if any(r.s == AUTO for r in summary.rows) and recipe.auto_scale is not None:
        cands = ", ".join(scale_label(c) for c in recipe.auto_scale.candidates)
        lines.append(f"s = auto: chosen per trained model among {cands} by {recipe.auto_scale.metric} on the "
                     "held-out part of the training data (never the validation set); "
                     "'s chosen' = mean (min–max) over seeds.")
    if _has_paper(summary):
        src = f" ({recipe.paper_source})" if recipe.paper_source else ""
        lines.append(f"paper: the paper's number{src}; diff = measured mean − paper; "
                     f"'!' marks |diff| > tolerance ({_f(recipe.tolerance)} points).")
    else:
        lines.append("paper: the paper's numbers have not been entered in the recipe yet "
                     "(its `paper` block is null), so no comparison is shown.")
    return lines


def render_markdown(summary: Summary, figures: Sequence[str] = ()) -> str:
    """The recipe's Markdown page: header, table, explanations, provenance, failures, figures."""
    recipe = summary.recipe
    headers, body = table_rows(summary)
    c = summary.counts
    out = [f"# {recipe.title}", ""]
    meta = [f"recipe `{recipe.name}`", f"dataset `{recipe.dataset}`", f"protocol `{recipe.protocol}`",
            f"seeds {_seeds(recipe.seeds)}", f"paper table: {recipe.paper_table or DASH}"]
    out += [" · ".join(meta), ""]
    out += [tabulate(body, headers=headers, tablefmt="github", disable_numparse=True), ""]
    out += [f"- {line}" for line in _explanations(summary)]
    out.append("")
    if summary.comparisons:
        p_headers, p_body = paired_rows(summary)
        out += [f"## Paired comparisons ({recipe.primary_metric})", ""]
        out += [tabulate(p_body, headers=p_headers, tablefmt="github", disable_numparse=True), ""]
        out += [f"- {line}" for line in _paired_explanations(summary)]
        out.append("")
    if summary.priors:
        out += ["Learned log-prior (minus the per-class mean of the centred PEM output on the validation "
                "set; theory: log training pixel share + const) against log training pixel share: "
                "Spearman (theory +1) and least-squares slope (theory 1; above 1 means s = 1 "
                "over-corrects), mean ± std of the per-seed values (the prior figure prints the same):",
                ""]
        out += [f"- {prior_text(*p)}" for p in summary.priors]
        out.append("")
    runs = (f"Runs: {c['expected']} expected, {c['ok']} ok, {c['failed']} failed, {c['missing']} missing"
            + (f"; {c['extra']} not in the recipe" if c["extra"] else "") + ".")
    out += [runs, "", f"Recipe sha256 `{recipe.sha256[:16]}`; base config `{recipe.base_config}`"
            + (f"; initial checkpoint {recipe.load_from.url}" if recipe.load_from else "") + "."]
    if summary.environment:
        out += ["", "Environment: " + "; ".join(f"{k} {v}" for k, v in summary.environment) + "."]
    for note in summary.notes:
        out += ["", f"Note: {note}."]
    failures = [(row, seed, err) for row in summary.rows for seed, err in row.errors]
    if failures:
        out += ["", "Failed runs:", ""]
        out += [f"- {row.variant}, seed {seed}, s {row.s_label}: {err[:300]}" for row, seed, err in failures]
    if figures:
        out += ["", "## Figures", ""]
        out += [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(out) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "—": "---", "–": "--", "Δ": r"$\Delta$", "−": "$-$"}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and spell out the few non-ASCII symbols the tables use; a leading minus
    of a number becomes a math minus (a text hyphen is too short)."""
    out = "".join(_LATEX_SPECIAL.get(ch) or _LATEX_SYMBOLS.get(ch) or ch for ch in text)
    if len(text) > 1 and text[0] == "-" and text[1].isdigit():
        out = "$-$" + out[1:]
    return out


def _booktabs(headers: list[str], body: list[list[str]], left: int) -> list[str]:
    """A ``tabular`` of escaped cells, its first ``left`` columns left-aligned, with booktabs rules."""
    text = tabulate([[latex_escape(c) for c in row] for row in body],
                    headers=[latex_escape(h) for h in headers], tablefmt="latex_raw", disable_numparse=True,
                    colalign=["left"] * left + ["right"] * (len(headers) - left))
    # latex_raw draws three \hline rules; booktabs wants top / mid / bottom rules instead.
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip() == r"\hline"]
    for i, name in zip(rules, (r"\toprule", r"\midrule", r"\bottomrule")):
        lines[i] = name
    return lines


def render_latex(summary: Summary) -> str:
    """A booktabs ``tabular`` (for ``\\input``), preceded by comment lines that explain it."""
    headers, body = table_rows(summary)
    # The notes column is for the README; a paper table lists missing runs in its caption instead.
    headers, body = headers[:-1], [row[:-1] for row in body]
    lines = _booktabs(headers, body, 2)
    recipe = summary.recipe
    c = summary.counts
    head = [f"% {recipe.title}", f"% recipe {recipe.name} (sha256 {recipe.sha256[:16]}); "
            f"paper table: {recipe.paper_table or '-'}",
            f"% runs: {c['expected']} expected, {c['ok']} ok, {c['failed']} failed, {c['missing']} missing"]
    head += [f"% {line}" for line in _explanations(summary)]
    return "\n".join(head + lines) + "\n"


def render_paired_latex(summary: Summary) -> str:
    """The paired comparisons (primary metric) as a second booktabs ``tabular``, for ``\\input``."""
    headers, body = paired_rows(summary)
    recipe = summary.recipe
    head = [f"% {recipe.title}: paired comparisons", f"% recipe {recipe.name} (sha256 {recipe.sha256[:16]})"]
    head += [f"% {line}" for line in _paired_explanations(summary)]
    return "\n".join(head + _booktabs(headers, body, 3)) + "\n"


def _csv_num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def render_csv(summary: Summary) -> str:
    """Machine-readable rows: raw numbers (4 decimals), counts and seed lists."""
    recipe = summary.recipe
    headers = ["recipe", "variant", "method", "s", "in_recipe", "n_expected", "n_ok", "n_failed", "n_missing",
               "ok_seeds", "failed_seeds", "missing_seeds", "other_recipe_version"]
    for m in recipe.metrics:
        headers += [f"{m}_mean", f"{m}_std", f"{m}_n", f"{m}_delta", f"{m}_paper", f"{m}_diff", f"{m}_flag"]
    headers += [f"{t}_mIoU_{k}" for t in THIRDS for k in ("mean", "std")]
    headers += ["s_chosen_mean", "s_chosen_min", "s_chosen_max"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    for row in summary.rows:
        cells: list[Any] = [recipe.name, row.variant, row.method, row.s_label, int(row.in_recipe),
                            len(row.expected_seeds), row.n, len(row.failed_seeds), len(row.missing_seeds),
                            " ".join(map(str, row.ok_seeds)), " ".join(map(str, row.failed_seeds)),
                            " ".join(map(str, row.missing_seeds)), row.other_version]
        for m in recipe.metrics:
            st = row.stats[m]
            cells += [_csv_num(st.mean), _csv_num(st.std), st.n, _csv_num(row.delta[m]),
                      _csv_num(row.paper.get(m)), _csv_num(row.diff[m]), int(row.flagged[m])]
        thirds = row.thirds or [Stat(None, None, 0)] * 3
        cells += [x for t in thirds for x in (_csv_num(t.mean), _csv_num(t.std))]
        chosen = row.chosen_s
        cells += [_csv_num(float(np.mean(chosen))) if chosen else "", _csv_num(chosen[0]) if chosen else "",
                  _csv_num(chosen[-1]) if chosen else ""]
        writer.writerow(cells)
    return buf.getvalue()


def render_paired_csv(summary: Summary) -> str:
    """Every paired comparison for every metric, one line each: seeds, per-seed differences, mean,
    sd, interval, verdict and seeds to separate (raw numbers, 4 decimals)."""
    headers = ["recipe", "question", "a_variant", "a_s", "b_variant", "b_s", "metric", "n", "seeds",
               "diffs", "mean", "sd", "ci_low", "ci_high", "confidence", "verdict", "seeds_to_separate"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    for c in summary.comparisons:
        for m in summary.recipe.metrics:
            p = c.paired[m]
            writer.writerow([summary.recipe.name, c.question, *c.a, *c.b, m, p.n, " ".join(map(str, p.seeds)),
                             " ".join(f"{d:.4f}" for d in p.diffs), _csv_num(p.mean), _csv_num(p.sd),
                             _csv_num(p.low), _csv_num(p.high), p.confidence, p.verdict,
                             "" if p.needed is None else p.needed])
    return buf.getvalue()


def render_index(summaries: Sequence[Summary]) -> str:
    """``README.md`` of the tables folder: one line per recipe with its run counts."""
    headers = ["recipe", "title", "paper table", "expected", "ok", "failed", "missing", "other"]
    body = []
    for s in sorted(summaries, key=lambda x: x.recipe.name):
        c = s.counts
        r = s.recipe
        body.append([f"[{r.name}]({r.name}.md)", r.title, r.paper_table or DASH, str(c["expected"]), str(c["ok"]),
                     str(c["failed"]), str(c["missing"]), str(c["extra"])])
    out = ["# Result tables", "",
           "Generated by `npe-tables` (or `scripts/make_tables.sh`) from the result files in `results/<recipe>/`; "
           "do not edit by hand. Each recipe has Markdown, LaTeX and CSV tables (the paired comparisons "
           "also in `<recipe>_paired.tex` / `.csv`; how to read them: `docs/tables.md`) and figures beside "
           "them.", ""]
    if body:
        out.append(tabulate(body, headers=headers, tablefmt="github", disable_numparse=True))
        out += ["", "`other`: result files whose variant or scale factor the recipe does not list."]
    else:
        out.append("No result files yet: run `npe-repro <recipe>` first.")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------
# building


def _write(path: Path, text: str) -> Path:
    # Write only on change, through a temp file, so a rebuild never leaves a half-written table.
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    return write_text_atomic(path, text)


def write_recipe_tables(recipe: Recipe, results_dir: str | Path, out_dir: str | Path,
                        figures: bool = True) -> tuple[Summary, list[Path]]:
    """Write ``<recipe>.md/.tex/.csv`` (and figures) for one recipe; return its summary and the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = read_results(results_dir, recipe.name, recipe.dataset)
    summary = summarize(recipe, results)
    written: list[Path] = []
    if figures:
        from npe import plots  # noqa: PLC0415 - matplotlib is only needed when drawing

        written += plots.make_figures(recipe, results, out, results_dir=results_dir)
    names = [p.name for p in written]
    written.append(_write(out / f"{recipe.name}.md", render_markdown(summary, names)))
    written.append(_write(out / f"{recipe.name}.tex", render_latex(summary)))
    written.append(_write(out / f"{recipe.name}.csv", render_csv(summary)))
    written.append(_write(out / f"{recipe.name}_paired.tex", render_paired_latex(summary)))
    written.append(_write(out / f"{recipe.name}_paired.csv", render_paired_csv(summary)))
    return summary, written


def build(results_dir: str | Path, out_dir: str | Path | None = None, recipes: Sequence[str] = (),
          figures: bool = True) -> list[Path]:
    """Rebuild tables (and figures) for ``recipes`` (names or paths), or for every recipe with results,
    plus the ``README.md`` index over all recipes with results. Returns the files written."""
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / TABLES_DIRNAME
    clean_stale_temps(out)   # figures and tables a killed build left half-written
    known = set(list_recipes())
    wanted = [load_recipe(r, resolve=False) for r in recipes]
    indexed = {r.name: r for r in wanted}
    for name in discover(results_dir):
        if name in indexed:
            continue
        if name not in known:
            log.warning('%s has result files but no recipe %s.yaml; skipped', results_dir / name, name)
            continue
        indexed[name] = load_recipe(name, resolve=False)
    targets = wanted or [indexed[n] for n in sorted(indexed)]

    written: list[Path] = []
    summaries: dict[str, Summary] = {}
    for recipe in targets:
        summary, files = write_recipe_tables(recipe, results_dir, out, figures=figures)
        summaries[recipe.name] = summary
        written += files
    for name, recipe in sorted(indexed.items()):
        if name not in summaries:
            summaries[name] = summarize(recipe, read_results(results_dir, name, recipe.dataset))
    out.mkdir(parents=True, exist_ok=True)
    written.append(_write(out / "README.md", render_index(list(summaries.values()))))
    return written
