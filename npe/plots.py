"""Figures beside the tables: per-class IoU, learned prior vs. class frequency, training loss.

Drawn with matplotlib's object API on an Agg canvas (no pyplot state, no display needed). PNGs carry
no software/date metadata, so the same inputs give the same bytes with the same matplotlib.
A figure whose inputs are absent is skipped, and a stale copy of it is removed, so the folder always
mirrors the current result files.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from npe.constants import AUTO, COUNTED_LA, MAIN_ONLY, NPE_COUNTED
from npe.files import write_bytes_atomic
from npe.recipes import Recipe
from npe.results import RunResult, group_results
from npe.stats import Row, mean_vector, prior_text, summarize

DPI = 100
_SAVE = {"dpi": DPI, "metadata": {"Software": None}}
FIGURES = ("per_class_iou", "prior", "loss", "examples")
#: Loss curves a result file's ``log`` may hold (key, axis title), drawn side by side.
LOSS_PARTS = (("loss", "total training loss"), ("loss_ce", "cross-entropy (main head)"),
              ("loss_one_way_logistic", "PEM loss (one-way logistic)"))


def _save(fig: Figure, path: Path) -> Path:
    # Drawn in memory, then written through a temporary file unique to this writer and a rename, so
    # two table builds at once never share (or pull away) each other's temporary file.
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **_SAVE)
    return write_bytes_atomic(path, buffer.getvalue())


def _skip(path: Path) -> None:
    path.unlink(missing_ok=True)   # another build may have removed it first


def _class_order(share: np.ndarray | None, n: int) -> np.ndarray:
    if share is None or share.size != n:
        return np.arange(n)
    return np.argsort(-share, kind="stable")


def _best(rows: Sequence[Row], metric: str) -> Row | None:
    """The row with the highest mean primary metric; ties go to the earlier row (s = 1 first)."""
    best = None
    for r in rows:
        mean = r.stats[metric].mean
        if mean is not None and (best is None or mean > best.stats[metric].mean):
            best = r
    return best


def _as_recipe_chooses(rows: Sequence[Row], metric: str) -> tuple[Row | None, str]:
    """The row a kind of method is shown by, and how its s was chosen: ``auto`` as the recipe does
    (held-out training data); a single row as it is; else, for recipes without ``auto``, the best
    mean on the validation set, said so in the legend (an optimistic choice)."""
    auto = next((r for r in rows if r.s == AUTO and r.n), None)
    if auto is not None:
        return auto, "s=auto, chosen on held-out training data"
    if len(rows) == 1:
        return rows[0], ""
    best = _best(rows, metric)
    return best, (f"s={best.s_label}, best on validation" if best is not None else "")


def plot_per_class_iou(recipe: Recipe, results: Sequence[RunResult], path: Path) -> Path | None:
    """Grouped bars of per-class IoU (mean over seeds): baseline, counted LA, NPE-LA and the
    decomposition rows, each at ``auto`` where the recipe has it (s chosen per model on held-out
    training data, as the recipe chooses), else at its best mean on the validation set (the legend
    says which). Classes are sorted by training pixel share, most frequent first.
    """
    summary = summarize(recipe, results)
    groups = group_results(results)
    metric = recipe.primary_metric
    base = recipe.baseline
    derived = recipe.derived_rows()
    plain = (COUNTED_LA, getattr(base, "name", None), *derived)
    candidates = [
        ("baseline", [r for r in summary.rows if base is not None and r.variant == base.name and r.in_recipe]),
        ("counted LA", [r for r in summary.rows if r.variant == COUNTED_LA and r.in_recipe]),
        ("NPE-LA", [r for r in summary.rows if r.in_recipe and r.variant not in plain]),
        ("NPE main head only", [r for r in summary.rows if r.in_recipe and derived.get(r.variant, ("", ""))[1] == MAIN_ONLY]),
        ("counted LA of NPE model", [r for r in summary.rows if r.in_recipe
                                     and derived.get(r.variant, ("", ""))[1] == NPE_COUNTED]),
    ]
    series = []
    for kind, rows in candidates:
        row, how = _as_recipe_chooses(rows, metric)
        if row is None:
            continue
        runs = list(groups.get((row.variant, row.s_label), {}).values())
        iou = mean_vector(runs, lambda r: r.per_class("IoU"))
        if iou is not None:
            name = f"{kind}: {row.variant}" if kind == "NPE-LA" else kind
            series.append((f"{name}, {how}" if how else name, iou, row.n))
    if not series or len({s[1].size for s in series}) != 1:
        _skip(path)
        return None
    n_classes = series[0][1].size
    order = _class_order(summary.share, n_classes)
    names = summary.class_names or [str(i) for i in range(n_classes)]

    width_in = min(40.0, max(8.0, 0.18 * n_classes * len(series) + 4.0))
    fig = Figure(figsize=(width_in, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(n_classes)
    bar = 0.8 / len(series)
    for i, (label, iou, n) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * bar, np.nan_to_num(iou[order], nan=0.0), width=bar,
               label=f"{label} (n={n})")
    ax.set_xticks(x)
    ax.set_xticklabels([names[k] for k in order], rotation=90 if n_classes > 8 else 0,
                       fontsize=8 if n_classes > 30 else 9)
    ax.set_xlim(-0.6, n_classes - 0.4)
    ax.set_ylabel("IoU (%)")
    ax.set_xlabel("class (most frequent in training first)")
    ax.set_title(f"{recipe.name}: per-class IoU, mean over seeds")
    # outside the axes: bars reach every height, so no corner inside is free
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def learned_priors(recipe: Recipe, results: Sequence[RunResult], per_seed: bool = False) -> list[tuple]:
    """(label, mean learned prior over seeds, number of seeds) per trained NPE model group; with
    ``per_seed`` a fourth item: ``[(seed, prior), ...]``.

    The learned prior does not depend on s, and variants sharing a ``train_key`` share the model, so
    each (train_key, seed) counts once, under the first variant listed with that key.
    """
    by_variant: dict[str, dict[int, RunResult]] = {}
    for r in results:
        if r.ok and r.vector("learned_prior") is not None:
            by_variant.setdefault(r.variant, {}).setdefault(r.seed, r)
    out = []
    seen_keys: set[str] = set()
    for v in recipe.variants:
        if v.is_baseline or v.train_key in seen_keys or v.name not in by_variant:
            continue
        seen_keys.add(v.train_key)
        runs = [by_variant[v.name][seed] for seed in sorted(by_variant[v.name])]
        mean = mean_vector(runs, lambda r: r.vector("learned_prior"))
        if mean is not None:
            seeds = [(r.seed, r.vector("learned_prior")) for r in runs]
            out.append((v.name, mean, len(runs), seeds) if per_seed else (v.name, mean, len(runs)))
    return out


def prior_figure(recipe: Recipe, results: Sequence[RunResult]) -> Figure | None:
    """The prior figure (None when no result file has a learned prior): the learned log-prior (minus
    the centred PEM output) against log training pixel share, one colour per NPE model, every seed's
    points (light) and their mean (outlined), and the same statistics as the table
    (:func:`npe.stats.prior_text`: mean ± std of the per-seed Spearman and slope)."""
    summary = summarize(recipe, results)
    share = summary.share
    priors = [p for p in learned_priors(recipe, results, per_seed=True)
              if share is not None and p[1].size == share.size]
    if share is None or not priors:
        return None
    fig = Figure(figsize=(7.0, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    keep = share > 0
    logs = np.log(np.where(keep, share, np.nan))
    for i, (label, prior, n, seeds) in enumerate(priors):
        marker = "os^Dv<>ph*"[i // 10 % 10]
        for j, (seed, values) in enumerate(seeds):  # every seed's points, small and light
            if values is not None and values.size == share.size:
                ax.scatter(logs[keep], -values[keep], s=10, color=f"C{i % 10}", alpha=0.35, marker=marker,
                           linewidths=0, label=f"{label}, each seed" if j == 0 else None)
        ax.scatter(logs[keep], -prior[keep], s=30, color=f"C{i % 10}", label=f"{label}, mean over seeds (n={n})",
                   marker=marker, edgecolors="black", linewidths=0.5)
    # theory: learned log-prior = log share + const (slope 1), drawn through the first model's mean
    ref = -priors[0][1]
    ok = keep & np.isfinite(ref)
    if ok.sum() >= 2:
        xs = np.linspace(np.nanmin(logs[ok]), np.nanmax(logs[ok]), 2)
        c = float(np.mean(ref[ok] - logs[ok]))
        ax.plot(xs, xs + c, "--", color="0.4", linewidth=1, label="theory: log share + const")
    lines = ["Spearman and slope vs log share:"] + [prior_text(*p) for p in summary.priors]
    ax.set_xlabel("log(training pixel share)")
    ax.set_ylabel("learned log-prior (minus centred PEM output)")
    ax.set_title(f"{recipe.name}: learned log-prior vs class frequency")
    ax.text(0.98, 0.02, "\n".join(lines), transform=ax.transAxes, fontsize=7, va="bottom", ha="right",
            family="monospace", bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_prior(recipe: Recipe, results: Sequence[RunResult], path: Path) -> Path | None:
    """Draw :func:`prior_figure` to ``path`` (or remove a stale copy when there is nothing to draw)."""
    fig = prior_figure(recipe, results)
    if fig is None:
        _skip(path)
        return None
    return _save(fig, path)


def plot_loss(recipe: Recipe, results: Sequence[RunResult], path: Path) -> Path | None:
    """Draw :func:`loss_figure` to ``path`` (or remove a stale copy when there is nothing to draw)."""
    fig = loss_figure(recipe, results)
    if fig is None:
        _skip(path)
        return None
    return _save(fig, path)


def loss_figure(recipe: Recipe, results: Sequence[RunResult]) -> Figure | None:
    """Training loss against iteration (None when no result file holds a curve), one colour per
    trained model group, one line per seed; one panel per loss the result files hold: the total, the
    cross-entropy of the main head and the PEMs' one-way logistic loss apart (older result files:
    the total only). Panels are in :data:`LOSS_PARTS` order, each titled ``<recipe>: <axis title>``."""
    variant_key = {v.name: v.train_key for v in recipe.variants}
    label_of: dict[str, str] = {}
    for v in recipe.variants:
        label_of.setdefault(v.train_key, v.name)
    parts = [(name, title) for name, title in LOSS_PARTS
             if any(isinstance((r.result.log or {}).get(name), list) for r in results)]
    curves: dict[tuple[str, str, int], np.ndarray] = {}
    for r in results:
        log = r.result.log or {}
        if not r.ok or r.variant == COUNTED_LA:
            continue
        key = r.result.train_key or variant_key.get(r.variant) or r.variant
        for name, _ in parts:
            loss = log.get(name)
            if not isinstance(loss, list) or not loss:
                continue
            try:
                arr = np.array([[float(a), float(b)] for a, b in loss], dtype=float)
            except (TypeError, ValueError):
                continue
            curves.setdefault((name, key, r.seed), arr)
    if not curves:
        return None
    keys = sorted({k for _, k, _ in curves}, key=lambda k: (list(label_of).index(k) if k in label_of else 10**6, k))
    parts = [p for p in parts if any(n == p[0] for n, _, _ in curves)]
    fig = Figure(figsize=(5.0 * len(parts) + 2.0, 4.5))
    for col, (name, title) in enumerate(parts):
        ax = fig.add_subplot(1, len(parts), col + 1)
        for i, key in enumerate(keys):
            seeds = sorted(seed for n, k, seed in curves if k == key and n == name)
            for j, seed in enumerate(seeds):
                arr = curves[(name, key, seed)]
                ax.plot(arr[:, 0], arr[:, 1], color=f"C{i % 10}", linewidth=1, alpha=0.8,
                        label=f"{label_of.get(key, key)} (seeds {', '.join(map(str, seeds))})" if j == 0 else None)
        ax.set_xlabel("iteration")
        ax.set_ylabel(title)
        ax.set_title(f"{recipe.name}: {title}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _colour(label: np.ndarray, n_classes: int) -> np.ndarray:
    """Class indices as RGB (a fixed qualitative palette; 255 = ignore in black)."""
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n_classes > 10 else "tab10"]
    palette = (np.array([cmap(i % cmap.N)[:3] for i in range(max(n_classes, 1))]) * 255).astype(np.uint8)
    out = np.zeros(label.shape + (3,), dtype=np.uint8)
    valid = label < n_classes
    out[valid] = palette[label[valid]]
    return out


def plot_examples(recipe: Recipe, results_dir: str | Path | None, path: Path) -> Path | None:
    """Qualitative figure: for a few validation images with rare classes, the image, its ground truth,
    the baseline's prediction and NPE-LA's at the chosen s (saved by the driver, npe.examples)."""
    from PIL import Image

    from npe import examples

    index = examples.load(Path(results_dir), recipe.name) if results_dir is not None else None
    if not index or not index.get("images") or not index.get("rows"):
        _skip(path)
        return None
    folder, classes = index["dir"], index.get("classes") or []
    columns = [("image", "image"), ("ground truth", "gt")] + [(label, sub) for label, sub in index["rows"].items()]
    names = index["images"]
    fig = Figure(figsize=(2.4 * len(columns), 2.4 * len(names) + 0.8))
    for r, name in enumerate(names):
        for c, (title, sub) in enumerate(columns):
            ax = fig.add_subplot(len(names), len(columns), r * len(columns) + c + 1)
            ax.set_axis_off()
            file = folder / sub / f"{name}.png"
            if file.is_file():
                data = np.asarray(Image.open(file))
                ax.imshow(data if sub == "image" else _colour(data.astype(np.int64), len(classes)),
                          interpolation="nearest")
            if r == 0:
                ax.set_title(title, fontsize=9)
            if c == 0:
                ax.text(-0.05, 0.5, name, transform=ax.transAxes, rotation=90, va="center", ha="right",
                        fontsize=8)
    if classes and len(classes) <= 20:
        from matplotlib.patches import Patch

        handles = [Patch(color=_colour(np.array([k]), len(classes))[0] / 255, label=n) for k, n in enumerate(classes)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(classes), 8), fontsize=8, frameon=False)
    fig.suptitle(f"{recipe.name}: validation images with rare classes (first seed)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 if classes else 0, 1, 0.97))
    return _save(fig, path)


def make_figures(recipe: Recipe, results: Sequence[RunResult], out_dir: str | Path,
                 results_dir: str | Path | None = None) -> list[Path]:
    """Draw all figures of a recipe into ``out_dir`` as ``<recipe>_<figure>.png``; return those drawn.
    ``results_dir``: where the examples of the qualitative figure are (``<results_dir>/<recipe>/examples``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drawn = []
    for name, fn in (("per_class_iou", plot_per_class_iou), ("prior", plot_prior), ("loss", plot_loss)):
        path = fn(recipe, results, out / f"{recipe.name}_{name}.png")
        if path is not None:
            drawn.append(path)
    path = plot_examples(recipe, results_dir, out / f"{recipe.name}_examples.png")
    if path is not None:
        drawn.append(path)
    return drawn
