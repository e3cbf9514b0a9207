"""Figures: prior_fit against independent computations; PNGs drawn, deterministic, skipped cleanly."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from npe import plots, recipes, stats
from npe import results as result_files

SHARE = np.array([0.5, 0.2, 0.15, 0.08, 0.04, 0.02, 0.01])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


def test_prior_fit_exact_line():
    prior = 1.6 * -np.log(SHARE) + 3.0
    fit = stats.prior_fit(prior, SHARE)
    assert fit["spearman"] == pytest.approx(-1.0)
    assert fit["slope"] == pytest.approx(1.6)
    assert fit["intercept"] == pytest.approx(3.0)
    assert fit["n"] == 7


def test_prior_fit_against_independent_computation():
    rng = np.random.default_rng(3)
    prior = -np.log(SHARE) + rng.normal(0, 1.0, SHARE.size)
    fit = stats.prior_fit(prior, SHARE)
    # no ties here, so ranks are argsort of argsort
    rank = lambda v: np.argsort(np.argsort(v)).astype(float)  # noqa: E731
    assert fit["spearman"] == pytest.approx(_pearson(rank(prior), rank(np.log(SHARE))))
    x = -np.log(SHARE)
    slope = _pearson(x, prior) * prior.std() / x.std()
    assert fit["slope"] == pytest.approx(slope)
    assert fit["intercept"] == pytest.approx(prior.mean() - slope * x.mean())


def test_spearman_with_ties_averages_ranks():
    a, b = [1.0, 2.0, 2.0, 3.0], [10.0, 20.0, 30.0, 40.0]
    assert stats.spearman(a, b) == pytest.approx(_pearson([1, 2.5, 2.5, 4], [1, 2, 3, 4]))
    assert math.isnan(stats.spearman([1.0, 1.0], [1.0, 2.0]))  # constant input: undefined


def test_prior_fit_drops_unusable_classes():
    prior = np.array([0.0, 1.0, np.nan, 2.0, 5.0])
    share = np.array([0.5, 0.3, 0.1, 0.1, 0.0])  # class 4 never seen in training: log undefined
    fit = stats.prior_fit(prior, share)
    assert fit["n"] == 3
    ref = stats.prior_fit(prior[[0, 1, 3]], share[[0, 1, 3]])
    assert fit["slope"] == pytest.approx(ref["slope"]) and fit["spearman"] == pytest.approx(ref["spearman"])
    assert math.isnan(stats.prior_fit([1.0], [1.0])["slope"])
    with pytest.raises(ValueError):
        stats.prior_fit([1.0, 2.0], [0.5, 0.3, 0.2])


# ---------------------------------------------------------------------------------------------- figures


def _recipe(tmp_path: Path) -> recipes.Recipe:
    (tmp_path / "base.py").write_text("")
    data = {
        "name": "figs", "title": "figures test", "dataset": "longtail_synth", "base_config": "base.py",
        "protocol": "upstream", "metrics": ["mIoU"], "seeds": [0, 1],
        "variants": [
            {"name": "baseline", "num_pem": 0},
            {"name": "npe1", "num_pem": 1, "scale_factors": [1, 2]},
            {"name": "npe1_sweep", "num_pem": 1, "scale_factors": [3]},  # same training as npe1
            {"name": "npe2", "num_pem": 2, "scale_factors": [1]},
        ],
    }
    path = tmp_path / "figs.yaml"
    path.write_text(yaml.safe_dump(data))
    return recipes.load_recipe(path)


def _write_results(tmp_path: Path, recipe: recipes.Recipe, with_prior: bool = True) -> Path:
    results_dir = tmp_path / "results"
    folder = results_dir / recipe.name
    folder.mkdir(parents=True, exist_ok=True)
    for variant, seed, s in recipe.expected_results():
        v = recipe.source_variant(variant)
        prior = None
        if with_prior and v.num_pem:
            prior = list(v.num_pem * -np.log(SHARE) + 0.1 * seed)
        finite = isinstance(s, float) and np.isfinite(s)
        iou = list(np.linspace(80, 20, SHARE.size) + (5 * s if finite else 0) + seed)
        s_json = s if finite or not isinstance(s, float) else "inf"
        data = {
            "schema": "npe-result/1", "status": "ok", "variant": variant, "seed": seed, "scale_factor": s_json,
            "scale_factor_value": s_json, "train_key": v.train_key,
            "metrics": {"mIoU": float(np.mean(iou))},
            "per_class": {"classes": [f"c{i}" for i in range(SHARE.size)], "IoU": iou},
            "class_pixel_share": list(SHARE), "learned_prior": prior,
            "log": {"loss": [[i, 2.0 / (1 + i) + seed] for i in range(0, 50, 10)]},
        }
        (folder / f"{result_files.result_stem(variant, seed, s)}.json").write_text(json.dumps(data))
    return results_dir


def test_learned_priors_mean_over_seeds_once_per_training(tmp_path):
    recipe = _recipe(tmp_path)
    results = result_files.read_results(_write_results(tmp_path, recipe), recipe.name)
    priors = plots.learned_priors(recipe, results)
    assert [label for label, _, _ in priors] == ["npe1", "npe2"]  # npe1_sweep shares npe1's model
    label, mean, n = priors[0]
    assert n == 2
    np.testing.assert_allclose(mean, -np.log(SHARE) + 0.05)  # mean of seed offsets 0 and 0.1
    fit = stats.prior_fit(priors[1][1], SHARE)
    assert fit["slope"] == pytest.approx(2.0) and fit["spearman"] == pytest.approx(-1.0)


def test_make_figures_writes_deterministic_pngs(tmp_path):
    recipe = _recipe(tmp_path)
    results = result_files.read_results(_write_results(tmp_path, recipe), recipe.name)
    out = tmp_path / "out"
    drawn = plots.make_figures(recipe, results, out)
    assert [p.name for p in drawn] == ["figs_per_class_iou.png", "figs_prior.png", "figs_loss.png"]
    first = {p.name: p.read_bytes() for p in drawn}
    assert all(b.startswith(PNG_MAGIC) and len(b) > 5000 for b in first.values())
    assert all(b"Software" not in b and b"matplotlib" not in b.lower() for b in first.values())
    for p in drawn:
        p.unlink()
    again = {p.name: p.read_bytes() for p in plots.make_figures(recipe, results, out)}
    assert again == first


def test_figures_skip_when_inputs_absent(tmp_path):
    recipe = _recipe(tmp_path)
    out = tmp_path / "out"
    results = result_files.read_results(_write_results(tmp_path, recipe), recipe.name)
    plots.make_figures(recipe, results, out)
    assert (out / "figs_prior.png").is_file()
    # rerun without learned priors: the stale prior figure goes, the others stay
    results = result_files.read_results(_write_results(tmp_path, recipe, with_prior=False), recipe.name)
    drawn = plots.make_figures(recipe, results, out)
    assert [p.name for p in drawn] == ["figs_per_class_iou.png", "figs_loss.png"]
    assert not (out / "figs_prior.png").exists()
    # nothing at all: every figure skipped, nothing raised
    assert plots.make_figures(recipe, [], out) == []
    assert not any(out.glob("*.png"))


def test_examples_figure_from_the_results_folder_alone(tmp_path):
    from PIL import Image

    recipe = _recipe(tmp_path)
    results_dir = _write_results(tmp_path, recipe)
    out = tmp_path / "out"
    folder = results_dir / recipe.name / "examples"
    rng = np.random.default_rng(0)
    rows = {"baseline": "baseline", "npe1, s=2 (auto)": "npe1, s=2 (auto)"}
    for sub in ("image", "gt", *rows.values()):
        (folder / sub).mkdir(parents=True)
        for name in ("a", "b"):
            data = rng.integers(0, 255, (16, 16, 3)) if sub == "image" else rng.integers(0, SHARE.size, (16, 16))
            Image.fromarray(data.astype(np.uint8)).save(folder / sub / f"{name}.png")
    (folder / "index.json").write_text(json.dumps({"images": ["a", "b"], "rows": rows,
                                                   "classes": [f"c{i}" for i in range(SHARE.size)]}))
    results = result_files.read_results(results_dir, recipe.name)
    drawn = plots.make_figures(recipe, results, out, results_dir=results_dir)
    assert [p.name for p in drawn][-1] == "figs_examples.png"
    first = (out / "figs_examples.png").read_bytes()
    assert first.startswith(PNG_MAGIC) and len(first) > 5000
    assert plots.make_figures(recipe, results, out, results_dir=results_dir)[-1].read_bytes() == first
    (folder / "index.json").unlink()  # no examples: the stale figure goes
    assert "figs_examples.png" not in [p.name for p in plots.make_figures(recipe, results, out, results_dir=results_dir)]
    assert not (out / "figs_examples.png").exists()


def test_prior_shows_every_seed_and_loss_parts_apart(tmp_path):
    recipe = _recipe(tmp_path)
    results_dir = _write_results(tmp_path, recipe)
    results = result_files.read_results(results_dir, recipe.name)
    priors = plots.learned_priors(recipe, results, per_seed=True)
    label, mean, n, seeds = priors[0]
    assert [s for s, _ in seeds] == [0, 1]
    np.testing.assert_allclose(seeds[1][1], -np.log(SHARE) + 0.1)
    only_total = plots.plot_loss(recipe, results, tmp_path / "total.png").read_bytes()
    for path in (results_dir / recipe.name).glob("*.json"):
        data = json.loads(path.read_text())
        data["log"]["loss_ce"] = [[i, 1.0 / (1 + i)] for i in range(0, 50, 10)]
        data["log"]["loss_one_way_logistic"] = [[i, 0.5 / (1 + i)] for i in range(0, 50, 10)]
        path.write_text(json.dumps(data))
    results = result_files.read_results(results_dir, recipe.name)
    parts = plots.plot_loss(recipe, results, tmp_path / "parts.png")
    from PIL import Image

    # three panels side by side: a wider figure than the total alone
    assert Image.open(parts).size[0] > Image.open(tmp_path / "total.png").size[0] * 2
    assert only_total != parts.read_bytes()


@pytest.mark.parametrize("name", ["longtail_synth", "longtail_synth_long"])
def test_prior_figure_prints_the_tables_statistics(name):
    """The committed results: every statistic the prior figure prints is the table's, and both are the
    mean ± std of per-seed values of the learned log-prior (+1 against log share in theory)."""
    import statistics

    from matplotlib.text import Text
    from scipy.stats import linregress, spearmanr

    root = Path(__file__).resolve().parents[1]
    recipe = recipes.load_recipe(name, resolve=False)
    results = result_files.read_results(root / "results", name, recipe.dataset)
    fig = plots.prior_figure(recipe, results)
    printed = [line for t in fig.findobj(Text) for line in t.get_text().splitlines() if ": Spearman " in line]
    table = (root / "results" / "tables" / f"{name}.md").read_text()
    assert printed and all(f"- {line}\n" in table for line in printed)
    # independently: per seed, Spearman and slope of minus the learned prior against log share
    share = next(r.vector("class_pixel_share") for r in results if r.ok)
    priors = {r.seed: r.vector("learned_prior") for r in results if r.ok and r.variant == "npe1"}
    rho = [spearmanr(-p, np.log(share)).statistic for p in priors.values()]
    slope = [linregress(np.log(share), -p).slope for p in priors.values()]
    expected = (f"npe1: Spearman {statistics.mean(rho):+.3f} ± {statistics.stdev(rho):.3f}, slope "
                f"{statistics.mean(slope):.2f} ± {statistics.stdev(slope):.2f} (mean ± std of per-seed values, "
                f"{len(priors)} seeds)")
    assert printed == [expected]
    assert statistics.mean(rho) > 0.98   # the natural sign: rare classes get a low log-prior


def test_per_class_figure_chooses_s_as_the_recipe_does(tmp_path):
    root = Path(__file__).resolve().parents[1]
    recipe = recipes.load_recipe("longtail_synth", resolve=False)
    summary = stats.summarize(recipe, result_files.read_results(root / "results", recipe.name, recipe.dataset))
    counted = [r for r in summary.rows if r.variant == "counted_la"]
    assert plots._best(counted, "mIoU").s_label == "2"   # what the figure showed before: best on validation
    row, how = plots._as_recipe_chooses(counted, "mIoU")
    assert row.s == "auto" and how == "s=auto, chosen on held-out training data"
    npe_rows = [r for r in summary.rows if r.variant == "npe1" and r.s != "auto"]
    row, how = plots._as_recipe_chooses(npe_rows, "mIoU")   # a recipe without auto: said plainly
    assert row.s_label == "2" and how == "s=2, best on validation"
    figs = _recipe(tmp_path)   # npe1 at s = 1, 2 only
    results = result_files.read_results(_write_results(tmp_path, figs), figs.name)
    rows = [r for r in stats.summarize(figs, results).rows if r.variant == "npe1"]
    assert plots._as_recipe_chooses(rows, "mIoU") == (rows[1], "s=2, best on validation")
