"""Statistics of result files, shared by tables and figures: mean ± std over seeds, head / middle /
tail thirds of classes, Spearman and slope of the learned log-prior, the paired comparisons between
rows (:func:`comparisons`; the statistics in ``npe.paired``), and :func:`summarize`, every number a
recipe's tables show (``npe.tables`` formats them, ``npe.plots`` draws them)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.stats import spearmanr

from npe.constants import AUTO, COUNTED_LA, INF, MAIN_ONLY, NPE_COUNTED
from npe.errors import ResultFileError
from npe.options import DEFAULTS
from npe.recipes import Recipe, ScaleFactor, scale_label
from npe.paired import Paired, paired_difference
from npe.results import RunResult, group_results, number

THIRDS = ("head", "middle", "tail")

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


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``: ties share their average rank); NaN if
    undefined (fewer than 2 values, or a constant input)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan   # scipy would warn and return NaN; say it without the warning
    return float(spearmanr(a, b).statistic)


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


def log_prior_fit(learned_prior: Sequence[float], share: Sequence[float]) -> dict:
    """:func:`prior_fit` read the way round a reader expects: the learned log-prior is minus the
    centred PEM output (theory: log share + const), so ``spearman`` against log share is +1 in theory
    and ``slope`` / ``intercept`` fit log-prior = slope * log share + intercept (theory: slope 1; the
    slope is the same number as :func:`prior_fit`'s, above 1 meaning s = 1 over-corrects)."""
    fit = prior_fit(learned_prior, share)
    return {**fit, "spearman": -fit["spearman"], "intercept": -fit["intercept"]}


def prior_stats(recipe: Recipe, results: Sequence[RunResult], share: np.ndarray | None
                ) -> list[tuple[str, Stat, Stat, int]]:
    """Per trained NPE model: (variant, Spearman of the learned log-prior vs log share, slope vs log
    share, seeds), each the mean ± std of the per-seed values (:func:`log_prior_fit` of each seed's
    prior; not the fit of the mean prior). The prior does not depend on s; variants sharing a
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
        fits = [log_prior_fit(per_seed[seed], share) for seed in sorted(per_seed)]
        if fits:
            rho = describe([f["spearman"] for f in fits if not math.isnan(f["spearman"])])
            slope = describe([f["slope"] for f in fits if not math.isnan(f["slope"])])
            out.append((v.name, rho, slope, len(fits)))
    return out


def prior_text(name: str, rho: Stat, slope: Stat, n: int) -> str:
    """One model's line of :func:`prior_stats`, worded once for the table and the prior figure (so
    the two print the same numbers under the same label)."""
    def pm(stat: Stat, digits: int, sign: str = "") -> str:
        if stat.mean is None:
            return "—"
        std = "—" if stat.std is None else f"{stat.std:.{digits}f}"
        return f"{stat.mean:{sign}.{digits}f} ± {std}"

    seeds = f"{n} seed{'s' if n != 1 else ''}"
    return (f"{name}: Spearman {pm(rho, 3, '+')}, slope {pm(slope, 2)} "
            f"(mean ± std of per-seed values, {seeds})")


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
    #: metric -> {seed: value} of the ok runs, what the paired comparisons pair on
    values: dict[str, dict[int, float]] = field(default_factory=dict)

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
    comparisons: list[Comparison] = field(default_factory=list)

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


#: The questions the paired comparisons answer, in table order (A − B per seed).
VS_BASELINE = "method − baseline"
VS_COUNTED = "NPE-LA − counted LA of the baseline"
VS_SAME_MODEL = "NPE-LA − counted LA of the same model"
VS_MAIN_ONLY = "NPE-LA − its main head alone"


@dataclass(frozen=True)
class Comparison:
    """Row ``a`` against row ``b`` (variant and s label each), paired over seeds for every metric."""

    question: str
    a: tuple[str, str]
    b: tuple[str, str]
    paired: dict[str, Paired]


def comparisons(recipe: Recipe, rows: Sequence[Row]) -> list[Comparison]:
    """The paired comparisons of a recipe's rows: every row against the baseline; every NPE-LA row
    against counted LA of the baseline and against counted LA of the same NPE model at the same s
    (``auto`` against ``auto``), and against that model's main head alone (what the learned prior
    adds). Rows outside the recipe are left out."""
    by_key = {(r.variant, r.s_label): r for r in rows if r.in_recipe}
    base = recipe.baseline
    base_row = by_key.get((base.name, "1")) if base is not None else None
    derived = recipe.derived_rows()

    def pair(question: str, a: Row, b: Row | None) -> Comparison | None:
        if b is None:
            return None
        return Comparison(question, (a.variant, a.s_label), (b.variant, b.s_label),
                          {m: paired_difference(a.values.get(m, {}), b.values.get(m, {}))
                           for m in recipe.metrics})

    found = [pair(VS_BASELINE, r, base_row) for r in by_key.values() if r is not base_row]
    for v in recipe.variants:
        if v.is_baseline:
            continue
        mine = {kind: name for name, (source, kind) in derived.items() if source.name == v.name}
        for r in (r for r in by_key.values() if r.variant == v.name):
            found.append(pair(VS_COUNTED, r, by_key.get((COUNTED_LA, r.s_label))))
            if NPE_COUNTED in mine:
                found.append(pair(VS_SAME_MODEL, r, by_key.get((mine[NPE_COUNTED], r.s_label))))
            if MAIN_ONLY in mine:
                found.append(pair(VS_MAIN_ONLY, r, by_key.get((mine[MAIN_ONLY], INF))))
    order = [VS_BASELINE, VS_COUNTED, VS_SAME_MODEL, VS_MAIN_ONLY]
    return sorted((c for c in found if c is not None), key=lambda c: order.index(c.question))


def _method(num_pem: int | None, pem_type: str | None, fb: bool, fd: bool, protocol: str | None,
            recipe_protocol: str) -> str:
    if num_pem is None:
        return "?"
    parts = ["baseline" if num_pem == 0 else f"NPE-LA, {num_pem} PEM{'s' if num_pem > 1 else ''}"]
    if num_pem and pem_type and pem_type != DEFAULTS.pem_type:  # the default type goes unsaid
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
    derived = recipe.derived_rows()
    if name in derived:
        source, kind = derived[name]
        what = "main head only" if kind == MAIN_ONLY else "counted LA"
        return f"{what} ({source.name} model)"
    v = recipe.variant(name)
    return _method(v.num_pem, v.pem_type, v.freeze_backbone, v.freeze_decode, v.protocol, recipe.protocol)


def _method_of_result(recipe: Recipe, r: RunResult) -> str:
    if r.variant in recipe.derived_rows():
        return _method_of_variant(recipe, r.variant)
    if r.result.adjustment == "counted_la" or r.variant == COUNTED_LA:
        return "counted LA (baseline)"
    o = r.result.pem_options
    return _method(o.num_pem, o.pem_type, bool(o.freeze_backbone), bool(o.freeze_decode), r.result.protocol,
                   recipe.protocol)


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
    names = ref.result.per_class.classes if ref.result.per_class else None
    names = [str(n) for n in names] if isinstance(names, list) and len(names) == share.size else None
    for r in results:
        vec = r.vector("class_pixel_share")
        if r.ok and vec is not None and (vec.shape != share.shape or not np.allclose(vec, share, atol=1e-9)):
            notes.append(f"class_pixel_share differs between result files (e.g. {r.file}); "
                         f"classes are ranked by {ref.file}'s")
            break
    return share, names, notes


def _environment(results: Sequence[RunResult]) -> list[tuple[str, str]]:
    # The machine too: float results move slightly across CPU models, instruction sets and thread
    # counts (README, "Does my run reproduce yours?"), so a table says where its numbers came from.
    keys = ("python", "torch", "cuda", "mmcv", "mmengine", "mmseg", "npe", "git_commit", "gpu", "image",
            "cpu_model", "cpu_isa", "threads")
    found: dict[str, set[str]] = {k: set() for k in keys}
    for r in results:
        env = r.result.environment or {}
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
        keys.append((variant, label if label in (AUTO, INF) else float(label), False))

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
            if r.result.recipe is not None and r.result.recipe.sha256 not in (None, "", recipe.sha256):
                row.other_version += 1
            if r.ok:
                row.ok_seeds.append(seed)
            else:
                row.failed_seeds.append(seed)
                row.errors.append((seed, " ".join(str(r.result.error or "no error message").split())))
        ok_runs = [runs[seed] for seed in row.ok_seeds]
        for m in recipe.metrics:
            row.stats[m] = describe([r.metric(m) for r in ok_runs if r.metric(m) is not None])
            row.values[m] = {r.seed: r.metric(m) for r in ok_runs if r.metric(m) is not None}
        if thirds_groups is not None:
            per_run = []
            for r in ok_runs:
                iou = r.per_class("IoU")
                if iou is None:
                    continue
                if iou.size != share.size:
                    raise ResultFileError(f"{r.file}: per_class.IoU has {iou.size} classes, "
                                    f"class_pixel_share has {share.size}")
                per_run.append(thirds_miou(iou, thirds_groups))
            row.thirds = [describe([t[i] for t in per_run if t[i] is not None]) for i in range(3)]
        if s == AUTO:
            row.chosen_s = sorted(v for v in (number(r.result.scale_factor_value) for r in ok_runs)
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
                   priors=prior_stats(recipe, results, share), comparisons=comparisons(recipe, rows))


def mean_vector(runs: Sequence[RunResult], get) -> np.ndarray | None:
    """Per-element mean over the ok runs of the vectors ``get(run)`` (NaN ignored; NaN where no run has
    a value); None when no run has one or their lengths differ."""
    vectors = [v for v in (get(r) for r in runs if r.ok) if v is not None]
    if not vectors or len({v.size for v in vectors}) != 1:
        return None
    stack = np.vstack(vectors)
    with np.errstate(invalid="ignore"):
        counts = np.sum(~np.isnan(stack), axis=0)
        sums = np.nansum(stack, axis=0)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
