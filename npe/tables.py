"""Aggregate result files (``npe-result/1``) into tables: Markdown, LaTeX and CSV, one set per recipe.

Inputs are the result files under ``<results>/<recipe>/*.json`` and the recipe YAML (variant order,
expected runs, paper numbers). Output is a pure function of them: inputs are sorted, floats have
fixed formats and nothing time-dependent is written, so deleting ``results/tables`` and rebuilding
gives byte-identical files.
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from tabulate import tabulate

from npe.errors import UserError
from npe.files import write_text_atomic
from npe.recipes import AUTO, COUNTED_LA, Recipe, ScaleFactor, list_recipes, load_recipe, scale_label

SCHEMA = "npe-result/1"
TABLES_DIRNAME = "tables"
THIRDS = ("head", "middle", "tail")


# --------------------------------------------------------------------------------------------------
# reading result files


@dataclass(frozen=True)
class RunResult:
    """One result file: its name, the parsed dict, and the fields every table needs."""

    file: str
    data: dict
    variant: str
    seed: int
    s: ScaleFactor
    ok: bool

    @property
    def s_label(self) -> str:
        return scale_label(self.s)

    def metric(self, name: str) -> float | None:
        value = (self.data.get("metrics") or {}).get(name)
        return _number(value)

    def per_class(self, key: str = "IoU") -> np.ndarray | None:
        values = (self.data.get("per_class") or {}).get(key)
        if not isinstance(values, list) or not values:
            return None
        return np.array([np.nan if _number(v) is None else float(v) for v in values], dtype=float)

    def vector(self, key: str) -> np.ndarray | None:
        values = self.data.get(key)
        if not isinstance(values, list) or not values:
            return None
        return np.array([np.nan if _number(v) is None else float(v) for v in values], dtype=float)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def _parse_result(path: Path) -> RunResult:
    where = f"{path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{where}: not a readable JSON result file ({' '.join(str(exc).split())}); "
                        "delete it and rerun the recipe") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else None
        raise UserError(f"{where}: schema: expected {SCHEMA!r}, got {got!r}")
    variant, seed, s, status = data.get("variant"), data.get("seed"), data.get("scale_factor"), data.get("status")
    if not isinstance(variant, str) or not variant:
        raise UserError(f"{where}: variant: expected a non-empty string, got {variant!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"{where}: seed: expected an integer, got {seed!r}")
    if s != AUTO and (_number(s) is None or s <= 0):
        raise UserError(f"{where}: scale_factor: expected a number > 0 or 'auto', got {s!r}")
    if status not in ("ok", "failed"):
        raise UserError(f"{where}: status: expected 'ok' or 'failed', got {status!r}")
    return RunResult(file=path.name, data=data, variant=variant, seed=seed,
                     s=AUTO if s == AUTO else float(s), ok=status == "ok")


def load_results(results_dir: str | Path, recipe_name: str) -> list[RunResult]:
    """All result files of a recipe (``<results_dir>/<recipe_name>/*.json``), sorted by file name."""
    folder = Path(results_dir) / recipe_name
    if not folder.is_dir():
        return []
    return [_parse_result(p) for p in sorted(folder.glob("*.json"))]


def group_results(results: Iterable[RunResult]) -> dict[tuple[str, str], dict[int, RunResult]]:
    """Results keyed by (variant, s label) then seed; two files for the same run are an error."""
    groups: dict[tuple[str, str], dict[int, RunResult]] = {}
    for r in results:
        runs = groups.setdefault((r.variant, r.s_label), {})
        if r.seed in runs:
            raise UserError(f"{runs[r.seed].file} and {r.file}: both hold {r.variant} seed {r.seed} "
                            f"s={r.s_label}; delete the stale one")
        runs[r.seed] = r
    return groups


# --------------------------------------------------------------------------------------------------
# statistics


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (ddof=1; None for n < 2) and n of some values."""

    mean: float | None
    std: float | None
    n: int


def describe(values: Sequence[float]) -> Stat:
    """Mean, sample std (ddof=1) and count of the non-NaN values."""
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return Stat(None, None, 0)
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else None
    return Stat(float(np.mean(arr)), std, int(arr.size))


def class_thirds(share: Sequence[float]) -> list[np.ndarray]:
    """Class indices ranked by training pixel share (most frequent first; ties by index), split into
    head / middle / tail thirds. With C classes the sizes differ by at most one, the head taking the
    extra ones (``numpy.array_split``)."""
    share = np.asarray(share, dtype=float)
    order = np.argsort(-share, kind="stable")
    return [np.asarray(part, dtype=int) for part in np.array_split(order, 3)]


def thirds_miou(iou: np.ndarray, groups: Sequence[np.ndarray]) -> list[float | None]:
    """Mean IoU over each group of classes, ignoring NaN (classes absent from the validation set)."""
    out: list[float | None] = []
    for idx in groups:
        values = iou[idx]
        values = values[~np.isnan(values)]
        out.append(float(values.mean()) if values.size else None)
    return out


def _rank(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties sharing their average rank (as Spearman's rho needs)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=float)
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of tie-averaged ranks); NaN if undefined."""
    ra, rb = _rank(np.asarray(a, dtype=float)), _rank(np.asarray(b, dtype=float))
    if ra.size < 2:
        return math.nan
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra ** 2).sum() * (rb ** 2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else math.nan


def prior_fit(learned_prior: Sequence[float], share: Sequence[float]) -> dict:
    """How well a learned prior matches the counted one.

    Returns ``spearman`` (rank correlation of the prior with log(share); theory: -1), and ``slope`` /
    ``intercept`` of the least-squares line prior = slope * (-log share) + intercept (theory: slope 1;
    a slope above 1 means NPE-LA at s = 1 over-corrects, and s = slope undoes it), and ``n``, the number
    of classes used (those with a finite prior and a share > 0). Undefined values are NaN.
    """
    prior = np.asarray(learned_prior, dtype=float)
    share = np.asarray(share, dtype=float)
    if prior.shape != share.shape:
        raise ValueError(f"learned_prior has {prior.size} classes, share has {share.size}")
    keep = np.isfinite(prior) & np.isfinite(share) & (share > 0)
    y, x = prior[keep], -np.log(share[keep])
    out = {"spearman": math.nan, "slope": math.nan, "intercept": math.nan, "n": int(keep.sum())}
    if y.size < 2:
        return out
    out["spearman"] = spearman(y, -x)
    if np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        out["slope"], out["intercept"] = float(slope), float(intercept)
    return out


def prior_stats(recipe: Recipe, results: Sequence[RunResult], share: np.ndarray | None
                ) -> list[tuple[str, Stat, Stat, int]]:
    """Per trained NPE model: (variant, Spearman of learned prior vs log share, slope vs -log share,
    seeds), each as mean ± std over seeds. The prior does not depend on s; variants sharing a
    ``train_key`` share the model and are listed once."""
    if share is None:
        return []
    out = []
    seen: set[str] = set()
    for v in recipe.variants:
        if v.is_baseline or v.train_key in seen:
            continue
        seen.add(v.train_key)
        per_seed: dict[int, np.ndarray] = {}
        for r in results:
            prior = r.vector("learned_prior") if r.ok and r.variant == v.name else None
            if prior is not None and prior.size == share.size:
                per_seed.setdefault(r.seed, prior)
        fits = [prior_fit(per_seed[seed], share) for seed in sorted(per_seed)]
        if fits:
            rho = describe([f["spearman"] for f in fits if not math.isnan(f["spearman"])])
            slope = describe([f["slope"] for f in fits if not math.isnan(f["slope"])])
            out.append((v.name, rho, slope, len(fits)))
    return out


# --------------------------------------------------------------------------------------------------
# summary (numbers only; formatting below)


@dataclass
class Row:
    """One table row: a variant (or counted_la) at one scale factor."""

    variant: str
    s: ScaleFactor
    method: str
    in_recipe: bool
    expected_seeds: tuple[int, ...]
    ok_seeds: list[int] = field(default_factory=list)
    failed_seeds: list[int] = field(default_factory=list)
    missing_seeds: list[int] = field(default_factory=list)
    other_version: int = 0
    stats: dict[str, Stat] = field(default_factory=dict)
    delta: dict[str, float | None] = field(default_factory=dict)
    paper: dict[str, float | None] = field(default_factory=dict)
    diff: dict[str, float | None] = field(default_factory=dict)
    flagged: dict[str, bool] = field(default_factory=dict)
    thirds: list[Stat] | None = None
    chosen_s: list[float] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def s_label(self) -> str:
        return scale_label(self.s)

    @property
    def n(self) -> int:
        return len(self.ok_seeds)


@dataclass
class Summary:
    """Everything a recipe's tables show, computed from result files and the recipe."""

    recipe: Recipe
    rows: list[Row]
    class_names: list[str] | None
    share: np.ndarray | None
    groups: list[np.ndarray] | None
    environment: list[tuple[str, str]]
    notes: list[str]
    priors: list[tuple[str, Stat, Stat, int]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Runs expected / ok / failed / missing over the recipe's rows, and extra ones."""
        expected = [r for r in self.rows if r.in_recipe]
        return {
            "expected": sum(len(r.expected_seeds) for r in expected),
            "ok": sum(len(r.ok_seeds) for r in expected),
            "failed": sum(len(r.failed_seeds) for r in expected),
            "missing": sum(len(r.missing_seeds) for r in expected),
            "extra": sum(len(r.ok_seeds) + len(r.failed_seeds) for r in self.rows if not r.in_recipe),
        }


def _method(num_pem: int | None, pem_type: str | None, fb: bool, fd: bool, protocol: str | None,
            recipe_protocol: str) -> str:
    if num_pem is None:
        return "?"
    parts = ["baseline" if num_pem == 0 else f"NPE-LA, {num_pem} PEM{'s' if num_pem > 1 else ''}"]
    if num_pem and pem_type and pem_type != "auto":
        parts.append(f"{pem_type} PEM")
    if fb:
        parts.append("frozen backbone")
    if fd:
        parts.append("frozen decode head")
    if protocol and protocol != recipe_protocol:
        parts.append(f"protocol {protocol}")
    return ", ".join(parts)


def _method_of_variant(recipe: Recipe, name: str) -> str:
    if name == COUNTED_LA:
        return "counted LA (baseline)"
    v = recipe.variant(name)
    return _method(v.num_pem, v.pem_type, v.freeze_backbone, v.freeze_decode, v.protocol, recipe.protocol)


def _method_of_result(recipe: Recipe, r: RunResult) -> str:
    if r.data.get("adjustment") == "counted_la" or r.variant == COUNTED_LA:
        return "counted LA (baseline)"
    o = r.data.get("options") or {}
    num_pem = o.get("num_pem") if isinstance(o.get("num_pem"), int) else None
    return _method(num_pem, o.get("pem_type"), bool(o.get("freeze_backbone")), bool(o.get("freeze_decode")),
                   r.data.get("protocol"), recipe.protocol)


def _reference_share(results: Sequence[RunResult]) -> tuple[np.ndarray | None, list[str] | None, list[str]]:
    notes: list[str] = []
    ref: RunResult | None = None
    share = None
    for r in results:
        vec = r.vector("class_pixel_share")
        if r.ok and vec is not None:
            ref, share = r, vec
            break
    if ref is None or share is None:
        return None, None, notes
    names = (ref.data.get("per_class") or {}).get("classes")
    names = [str(n) for n in names] if isinstance(names, list) and len(names) == share.size else None
    for r in results:
        vec = r.vector("class_pixel_share")
        if r.ok and vec is not None and (vec.shape != share.shape or not np.allclose(vec, share, atol=1e-9)):
            notes.append(f"class_pixel_share differs between result files (e.g. {r.file}); "
                         f"classes are ranked by {ref.file}'s")
            break
    return share, names, notes


def _environment(results: Sequence[RunResult]) -> list[tuple[str, str]]:
    keys = ("python", "torch", "cuda", "mmcv", "mmengine", "mmseg", "npe", "git_commit", "gpu")
    found: dict[str, set[str]] = {k: set() for k in keys}
    for r in results:
        env = r.data.get("environment") or {}
        for k in keys:
            value = env.get(k)
            if k == "git_commit" and isinstance(value, str):
                value = value[:12]
            found[k].add("none" if value in (None, "") else str(value))
    return [(k, ", ".join(sorted(found[k]))) for k in keys if found[k]]


def summarize(recipe: Recipe, results: Sequence[RunResult]) -> Summary:
    """Compute every number the tables show for ``recipe`` from its ``results``."""
    groups = group_results(results)
    share, class_names, notes = _reference_share(results)
    thirds_groups = class_thirds(share) if share is not None and share.size >= 3 else None

    keys: list[tuple[str, ScaleFactor, bool]] = [(v, s, True) for v, s in recipe.row_keys()]
    known = {(v, scale_label(s)) for v, s, _ in keys}
    extra = sorted({(r.variant, r.s_label) for r in results} - known)
    for variant, label in extra:
        keys.append((variant, AUTO if label == AUTO else float(label), False))

    rows: list[Row] = []
    for variant, s, in_recipe in keys:
        runs = groups.get((variant, scale_label(s)), {})
        expected = recipe.seeds if in_recipe else ()
        if in_recipe:
            method = _method_of_variant(recipe, variant)
        else:
            first = runs[min(runs)]
            method = _method_of_result(recipe, first) + "; not in recipe"
        row = Row(variant=variant, s=s, method=method, in_recipe=in_recipe, expected_seeds=tuple(expected))
        for seed in sorted(set(expected) | set(runs)):
            r = runs.get(seed)
            if r is None:
                row.missing_seeds.append(seed)
                continue
            if (r.data.get("recipe") or {}).get("sha256") not in (None, "", recipe.sha256):
                row.other_version += 1
            if r.ok:
                row.ok_seeds.append(seed)
            else:
                row.failed_seeds.append(seed)
                row.errors.append((seed, " ".join(str(r.data.get("error") or "no error message").split())))
        ok_runs = [runs[seed] for seed in row.ok_seeds]
        for m in recipe.metrics:
            row.stats[m] = describe([r.metric(m) for r in ok_runs if r.metric(m) is not None])
        if thirds_groups is not None:
            per_run = []
            for r in ok_runs:
                iou = r.per_class("IoU")
                if iou is None:
                    continue
                if iou.size != share.size:
                    raise UserError(f"{r.file}: per_class.IoU has {iou.size} classes, "
                                    f"class_pixel_share has {share.size}")
                per_run.append(thirds_miou(iou, thirds_groups))
            row.thirds = [describe([t[i] for t in per_run if t[i] is not None]) for i in range(3)]
        if s == AUTO:
            row.chosen_s = sorted(v for v in (_number(r.data.get("scale_factor_value")) for r in ok_runs)
                                  if v is not None)
        for m in recipe.metrics:
            row.paper[m] = recipe.paper_value(variant, s, m) if in_recipe else None
        rows.append(row)

    base = recipe.baseline
    base_row = next((r for r in rows if base is not None and r.variant == base.name and r.in_recipe), None)
    for row in rows:
        for m in recipe.metrics:
            mean = row.stats[m].mean
            ref = base_row.stats[m].mean if base_row is not None else None
            row.delta[m] = None if row is base_row or mean is None or ref is None else mean - ref
            paper = row.paper.get(m)
            row.diff[m] = None if paper is None or mean is None else mean - paper
            row.flagged[m] = row.diff[m] is not None and abs(row.diff[m]) > recipe.tolerance + 1e-9

    other = sum(r.other_version for r in rows)
    if other:
        notes.append(f"{other} result file(s) were written by a different version of the recipe "
                     f"(sha256 differs from {recipe.sha256[:12]})")
    return Summary(recipe=recipe, rows=rows, class_names=class_names, share=share, groups=thirds_groups,
                   environment=_environment(results), notes=notes,
                   priors=prior_stats(recipe, results, share))


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
    if summary.priors:
        out += ["Learned prior (per-class mean of the centred PEM output on the validation set) against the "
                "training pixel share, per seed, mean ± std (theory: Spearman -1 against log share, "
                "slope 1 against -log share; a slope above 1 means s = 1 over-corrects):", ""]
        out += [f"- {name}: Spearman {_f(rho.mean, '.3f')} ± {_f(rho.std, '.3f')}, slope "
                f"{_f(slope.mean)} ± {_f(slope.std)} ({n} seed{'s' if n != 1 else ''})"
                for name, rho, slope, n in summary.priors]
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


def render_latex(summary: Summary) -> str:
    """A booktabs ``tabular`` (for ``\\input``), preceded by comment lines that explain it."""
    headers, body = table_rows(summary)
    # The notes column is for the README; a paper table lists missing runs in its caption instead.
    headers, body = headers[:-1], [row[:-1] for row in body]
    text = tabulate([[latex_escape(c) for c in row] for row in body],
                    headers=[latex_escape(h) for h in headers], tablefmt="latex_raw", disable_numparse=True,
                    colalign=["left", "left"] + ["right"] * (len(headers) - 2))
    # latex_raw draws three \hline rules; booktabs wants top / mid / bottom rules instead.
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip() == r"\hline"]
    for i, name in zip(rules, (r"\toprule", r"\midrule", r"\bottomrule")):
        lines[i] = name
    recipe = summary.recipe
    c = summary.counts
    head = [f"% {recipe.title}", f"% recipe {recipe.name} (sha256 {recipe.sha256[:16]}); "
            f"paper table: {recipe.paper_table or '-'}",
            f"% runs: {c['expected']} expected, {c['ok']} ok, {c['failed']} failed, {c['missing']} missing"]
    head += [f"% {line}" for line in _explanations(summary)]
    return "\n".join(head + lines) + "\n"


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
           "do not edit by hand. Each recipe has Markdown, LaTeX and CSV tables and figures beside them.", ""]
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


def discover(results_dir: str | Path) -> list[str]:
    """Names of the folders under ``results_dir`` that hold result files (the tables folder excluded)."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and p.name != TABLES_DIRNAME and any(p.glob("*.json")))


def write_recipe_tables(recipe: Recipe, results_dir: str | Path, out_dir: str | Path,
                        figures: bool = True) -> tuple[Summary, list[Path]]:
    """Write ``<recipe>.md/.tex/.csv`` (and figures) for one recipe; return its summary and the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = load_results(results_dir, recipe.name)
    summary = summarize(recipe, results)
    written: list[Path] = []
    if figures:
        from npe import plots  # noqa: PLC0415 - matplotlib is only needed when drawing

        written += plots.make_figures(recipe, results, out)
    names = [p.name for p in written]
    written.append(_write(out / f"{recipe.name}.md", render_markdown(summary, names)))
    written.append(_write(out / f"{recipe.name}.tex", render_latex(summary)))
    written.append(_write(out / f"{recipe.name}.csv", render_csv(summary)))
    return summary, written


def build(results_dir: str | Path, out_dir: str | Path | None = None, recipes: Sequence[str] = (),
          figures: bool = True) -> list[Path]:
    """Rebuild tables (and figures) for ``recipes`` (names or paths), or for every recipe with results,
    plus the ``README.md`` index over all recipes with results. Returns the files written."""
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / TABLES_DIRNAME
    known = set(list_recipes())
    wanted = [load_recipe(r, resolve=False) for r in recipes]
    indexed = {r.name: r for r in wanted}
    for name in discover(results_dir):
        if name in indexed:
            continue
        if name not in known:
            print(f"warning: {results_dir / name} has result files but no recipe {name}.yaml; skipped",
                  file=sys.stderr)
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
            summaries[name] = summarize(recipe, load_results(results_dir, name))
    out.mkdir(parents=True, exist_ok=True)
    written.append(_write(out / "README.md", render_index(list(summaries.values()))))
    return written
