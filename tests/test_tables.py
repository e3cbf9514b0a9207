"""Tables from synthetic result files: numbers checked against independent computations."""
from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml

from npe import recipes, stats, tables
from npe import results as result_files
from npe.cli import tables as tables_cli
from npe.errors import UserError

CLASSES = ["sky", "road", "tree", "car", "sign", "bike", "pole"]
# deliberately not sorted, so ranking by share matters: rank order = road, tree, sky, car, sign, pole, bike
SHARE = [0.2, 0.4, 0.25, 0.08, 0.04, 0.01, 0.02]
SEEDS = [0, 1, 2]


def write_recipe(tmp_path: Path, name: str = "synth", paper: dict | None = None,
                 decomposition: bool = False) -> recipes.Recipe:
    (tmp_path / "base.py").write_text("# test config\n")
    data = {
        "name": name,
        "title": "synthetic test",
        "paper_table": "Table 9",
        "dataset": "longtail_synth",
        "base_config": "base.py",
        "protocol": "upstream",
        "metrics": ["mIoU", "mDice"],
        "seeds": SEEDS,
        "tolerance": 1.0,
        "auto_scale": {"metric": "mIoU", "candidates": [1, 2, 3]},
        "variants": [
            {"name": "baseline", "num_pem": 0},
            {"name": "npe1", "num_pem": 1, "scale_factors": [1, 2, "auto"]},
        ],
        "paper": paper or {},
        "decomposition": decomposition,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return recipes.load_recipe(path)


def make_result(recipe: recipes.Recipe, variant: str, seed: int, s, iou: list, miou: float, mdice: float,
                status: str = "ok", chosen: float | None = None, prior=None, sha: str | None = None) -> dict:
    """A result dict shaped like docs/internals.md describes."""
    adjustment = "counted_la" if variant == "counted_la" else ("none" if variant == "baseline" else "npe")
    v = recipe.source_variant(variant)
    data = {
        "schema": "npe-result/1",
        "status": status,
        "recipe": {"name": recipe.name, "sha256": sha or recipe.sha256, "paper_table": recipe.paper_table},
        "dataset": recipe.dataset,
        "variant": variant, "train_key": v.train_key, "adjustment": adjustment,
        "seed": seed,
        "scale_factor": s,
        "scale_factor_value": chosen if s == "auto" else s,
        "auto_scale": ({"metric": "mIoU", "split": "holdout", "candidates": {"1": 50.0, "2": 51.0}}
                       if s == "auto" else None),
        "protocol": v.protocol,
        "options": {"num_pem": v.num_pem, "pem_type": v.pem_type, "freeze_backbone": v.freeze_backbone,
                    "freeze_decode": v.freeze_decode},
        "iterations": 600, "wall_time_s": 12.5 + seed,
        "checkpoint": f"work_dirs/{recipe.name}/{v.train_key}/seed{seed}/iter_600.pth",
        "metrics": {"aAcc": 90.0, "mIoU": miou, "mAcc": 70.0, "mDice": mdice},
        "per_class": {"classes": CLASSES, "IoU": iou, "Acc": [50.0] * 7, "Dice": [60.0] * 7},
        "class_pixel_share": SHARE,
        "learned_prior": prior,
        "log": {"loss": [[10, 1.0 + seed], [20, 0.5 + seed]]},
        "environment": {"python": "3.11.7", "torch": "2.13.0", "cuda": None, "mmcv": "2.1.0",
                        "mmengine": "0.10.7", "mmseg": "1.2.2", "npe": "0.1.0",
                        "git_commit": "0123456789abcdef0123", "gpu": None, "cpu_model": "AMD EPYC",
                        "cpu_isa": "AVX512", "threads": 2},
        "created": f"2026-11-24T03:0{seed}:00Z",
    }
    if status == "failed":
        data["error"] = "CUDA out of memory\nwhile training"
        del data["metrics"]
        data["per_class"] = None
    return data


def dump(results_dir: Path, recipe: recipes.Recipe, data: dict) -> Path:
    folder = results_dir / recipe.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result_files.result_stem(data['variant'], data['seed'], data['scale_factor'])}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


@pytest.fixture
def scenario(tmp_path):
    """Results for every expected run, except: npe1 s=2 seed 2 missing, npe1 auto seed 1 failed."""
    recipe = write_recipe(tmp_path, paper={"baseline": {"mIoU": 40.0}, "npe1@1": {"mIoU": 60.0, "mDice": 45.0}})
    rng = np.random.default_rng(7)
    results_dir = tmp_path / "results"
    truth: dict = {}
    for variant, seed, s in recipe.expected_results():
        if (variant, seed, s) == ("npe1", 2, 2.0):
            continue
        if (variant, seed, s) == ("npe1", 1, "auto"):
            dump(results_dir, recipe, make_result(recipe, variant, seed, s, [], 0, 0, status="failed"))
            continue
        iou = [round(float(x), 3) for x in rng.uniform(10, 90, size=7)]
        if (variant, seed) == ("baseline", 1):
            iou[6] = None  # a class absent from validation: NaN in MMSeg, null in JSON
        miou = round(float(rng.uniform(40, 60)), 3)
        mdice = round(float(rng.uniform(50, 70)), 3)
        chosen = [1.0, 2.0, 3.0][seed] if s == "auto" else None
        dump(results_dir, recipe, make_result(recipe, variant, seed, s, iou, miou, mdice, chosen=chosen))
        truth[(variant, recipes.scale_label(s), seed)] = (iou, miou, mdice, chosen)
    return recipe, results_dir, truth


def _row(summary, variant, s_label):
    return next(r for r in summary.rows if r.variant == variant and r.s_label == s_label)


def _independent_thirds(iou):
    ranked = sorted(range(len(SHARE)), key=lambda k: -SHARE[k])
    out = []
    for part in (ranked[:3], ranked[3:5], ranked[5:]):
        vals = [iou[k] for k in part if iou[k] is not None]
        out.append(sum(vals) / len(vals) if vals else None)
    return out


def test_class_thirds_ranked_by_share():
    groups = stats.class_thirds(SHARE)
    assert [list(g) for g in groups] == [[1, 2, 0], [3, 4], [6, 5]]
    assert [len(g) for g in stats.class_thirds([1] * 150)] == [50, 50, 50]
    # ties keep class order
    assert [list(g) for g in stats.class_thirds([0.5, 0.5, 0.5])] == [[0], [1], [2]]


def test_describe_uses_sample_std():
    st = stats.describe([1.0, 2.0, 4.0])
    assert st.mean == pytest.approx(7 / 3) and st.n == 3
    assert st.std == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]))
    one = stats.describe([5.0])
    assert one.std is None and one.n == 1
    assert stats.describe([]).mean is None


def test_summary_numbers(scenario):
    recipe, results_dir, truth = scenario
    summary = stats.summarize(recipe, result_files.read_results(results_dir, recipe.name))
    labels = [(r.variant, r.s_label) for r in summary.rows]
    assert labels == [("baseline", "1"), ("counted_la", "1"), ("counted_la", "2"), ("counted_la", "auto"),
                      ("npe1", "1"), ("npe1", "2"), ("npe1", "auto")]

    def mean_of(variant, s, idx):
        return statistics.mean(truth[(variant, s, seed)][idx] for seed in SEEDS if (variant, s, seed) in truth)

    base_miou = mean_of("baseline", "1", 1)
    for variant, s in labels:
        row = _row(summary, variant, s)
        seeds = [seed for seed in SEEDS if (variant, s, seed) in truth]
        assert row.ok_seeds == seeds
        mious = [truth[(variant, s, seed)][1] for seed in seeds]
        assert row.stats["mIoU"].mean == pytest.approx(statistics.mean(mious))
        assert row.stats["mIoU"].std == pytest.approx(statistics.stdev(mious))
        assert row.stats["mDice"].mean == pytest.approx(mean_of(variant, s, 2))
        if variant == "baseline":
            assert row.delta["mIoU"] is None
        else:
            assert row.delta["mIoU"] == pytest.approx(statistics.mean(mious) - base_miou)
        # thirds: mean over seeds of per-run third means
        per_run = [_independent_thirds(truth[(variant, s, seed)][0]) for seed in seeds]
        for i in range(3):
            assert row.thirds[i].mean == pytest.approx(statistics.mean(t[i] for t in per_run))

    npe_s2 = _row(summary, "npe1", "2")
    assert npe_s2.missing_seeds == [2] and npe_s2.n == 2
    auto = _row(summary, "npe1", "auto")
    assert auto.failed_seeds == [1] and auto.ok_seeds == [0, 2] and auto.chosen_s == [1.0, 3.0]
    assert "CUDA out of memory while training" in auto.errors[0][1]
    # paper comparison and the tolerance flag
    npe_s1 = _row(summary, "npe1", "1")
    assert npe_s1.paper["mIoU"] == 60.0
    assert npe_s1.diff["mIoU"] == pytest.approx(npe_s1.stats["mIoU"].mean - 60.0)
    assert npe_s1.flagged["mIoU"] == (abs(npe_s1.stats["mIoU"].mean - 60.0) > 1.0)
    assert _row(summary, "baseline", "1").diff["mIoU"] == pytest.approx(base_miou - 40.0)
    assert _row(summary, "npe1", "2").paper["mIoU"] is None
    assert summary.counts == {"expected": 21, "ok": 19, "failed": 1, "missing": 1, "extra": 0}


def test_rendered_tables(scenario, tmp_path):
    recipe, results_dir, truth = scenario
    out = tmp_path / "tables_out"
    tables.build(results_dir, out, recipes=[str(recipe.path)], figures=False)
    md = (out / "synth.md").read_text()
    assert "missing: 1 (seed 2)" in md and "failed: 1 (seed 1)" in md
    assert "| baseline" in md and "counted LA" in md and "head mIoU" in md
    assert "CUDA out of memory while training" in md
    assert "Runs: 21 expected, 19 ok, 1 failed, 1 missing." in md

    # the baseline row of the Markdown table shows mean ± std with 2 decimals
    mious = [truth[("baseline", "1", seed)][1] for seed in SEEDS]
    assert f"{statistics.mean(mious):.2f} ± {statistics.stdev(mious):.2f}" in md

    rows = list(csv.DictReader(io.StringIO((out / "synth.csv").read_text())))
    by = {(r["variant"], r["s"]): r for r in rows}
    npe1 = by[("npe1", "1")]
    mious = [truth[("npe1", "1", seed)][1] for seed in SEEDS]
    assert float(npe1["mIoU_mean"]) == pytest.approx(statistics.mean(mious), abs=1e-4)
    assert float(npe1["mIoU_std"]) == pytest.approx(statistics.stdev(mious), abs=1e-4)
    base = statistics.mean(truth[("baseline", "1", seed)][1] for seed in SEEDS)
    assert float(npe1["mIoU_delta"]) == pytest.approx(statistics.mean(mious) - base, abs=1e-4)
    assert npe1["mIoU_flag"] == str(int(abs(statistics.mean(mious) - 60.0) > 1.0))
    assert by[("npe1", "2")]["n_missing"] == "1" and by[("npe1", "2")]["missing_seeds"] == "2"
    assert by[("npe1", "auto")]["n_failed"] == "1" and by[("npe1", "auto")]["s_chosen_min"] == "1.0000"
    assert by[("baseline", "1")]["mIoU_delta"] == ""

    tex = (out / "synth.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "\\hline" not in tex
    body = tex[tex.index("\\begin{tabular}"):]
    assert "$\\pm$" in body and "counted\\_la" in body and "±" not in body and "Δ" not in body
    index = (out / "README.md").read_text()
    assert "[synth](synth.md)" in index
    # where the numbers came from: the machine as well as the versions
    assert "cpu_model AMD EPYC; cpu_isa AVX512; threads 2." in md and "image none" in md


def test_flag_marks_out_of_tolerance(tmp_path):
    recipe = write_recipe(tmp_path, paper={"baseline": {"mIoU": 50.0, "mDice": 60.0}})
    results_dir = tmp_path / "results"
    for seed, (miou, mdice) in zip(SEEDS, [(52.0, 60.2), (53.0, 60.4), (54.0, 60.6)]):
        dump(results_dir, recipe, make_result(recipe, "baseline", seed, 1.0, [50.0] * 7, miou, mdice))
    summary = stats.summarize(recipe, result_files.read_results(results_dir, recipe.name))
    row = _row(summary, "baseline", "1")
    assert row.diff["mIoU"] == pytest.approx(3.0) and row.flagged["mIoU"] is True
    assert row.diff["mDice"] == pytest.approx(0.4) and row.flagged["mDice"] is False
    headers, body = tables.table_rows(summary)
    cells = dict(zip(headers, body[0]))
    assert cells["diff mIoU"] == "+3.00 !" and cells["diff mDice"] == "+0.40"
    assert cells["paper mIoU"] == "50.00"
    # other rows are all missing and say so
    npe = dict(zip(headers, body[-1]))
    assert npe["mIoU"] == "missing" and npe["n"] == "0" and npe["notes"] == "missing: 3 (seed 0, 1, 2)"


def test_single_seed_std_dash_and_no_paper_columns(tmp_path):
    recipe = write_recipe(tmp_path)
    results_dir = tmp_path / "results"
    dump(results_dir, recipe, make_result(recipe, "baseline", 0, 1.0, [50.0] * 7, 51.234, 60.0))
    summary = stats.summarize(recipe, result_files.read_results(results_dir, recipe.name))
    headers, body = tables.table_rows(summary)
    assert not any(h.startswith("paper") for h in headers)
    assert dict(zip(headers, body[0]))["mIoU"] == "51.23 ± —"
    md = tables.render_markdown(summary)
    assert "have not been entered" in md


def test_all_failed_row_says_failed(tmp_path):
    recipe = write_recipe(tmp_path)
    results_dir = tmp_path / "results"
    for seed in SEEDS:
        dump(results_dir, recipe, make_result(recipe, "baseline", seed, 1.0, [], 0, 0, status="failed"))
    summary = stats.summarize(recipe, result_files.read_results(results_dir, recipe.name))
    headers, body = tables.table_rows(summary)
    cells = dict(zip(headers, body[0]))
    assert cells["mIoU"] == "failed" and cells["notes"] == "failed: 3 (seed 0, 1, 2)"
    assert summary.counts["failed"] == 3


def test_results_not_in_recipe_and_other_version_are_shown(tmp_path):
    recipe = write_recipe(tmp_path)
    results_dir = tmp_path / "results"
    dump(results_dir, recipe, make_result(recipe, "baseline", 0, 1.0, [50.0] * 7, 50.0, 60.0, sha="f" * 64))
    extra = make_result(recipe, "npe1", 0, 4.0, [50.0] * 7, 55.0, 60.0)
    extra["variant"] = "npe7"
    dump(results_dir, recipe, extra)
    summary = stats.summarize(recipe, result_files.read_results(results_dir, recipe.name))
    row = _row(summary, "npe7", "4")
    assert not row.in_recipe and row.stats["mIoU"].mean == 55.0 and "not in recipe" in row.method
    assert row.delta["mIoU"] == pytest.approx(5.0)
    assert summary.counts["extra"] == 1
    assert _row(summary, "baseline", "1").other_version == 1
    assert any("different version of the recipe" in n for n in summary.notes)


def test_duplicate_and_bad_result_files(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    results_dir = tmp_path / "results"
    data = make_result(recipe, "baseline", 0, 1.0, [50.0] * 7, 50.0, 60.0)
    dump(results_dir, recipe, data)
    (results_dir / recipe.name / "copy.json").write_text(json.dumps(data))
    # A second copy under another name breaks "file name = content" (no double-counted runs).
    with pytest.raises(UserError, match="copy.json: holds baseline seed 0 s=1, which belongs in "
                                        "baseline__seed0__s1.json"):
        stats.summarize(recipe, result_files.read_results(results_dir, recipe.name))
    (results_dir / recipe.name / "copy.json").write_text(json.dumps({**data, "schema": "other/2"}))
    with pytest.raises(SystemExit) as exc:
        tables_cli.main(["--results-dir", str(results_dir), "--recipe", str(recipe.path), "--no-figures"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "copy.json: schema:" in err[0]
    (results_dir / recipe.name / "copy.json").write_text("{not json")
    with pytest.raises(UserError, match="copy.json: not a readable JSON"):
        result_files.read_results(results_dir, recipe.name)


def test_rebuild_is_byte_identical(scenario, tmp_path):
    recipe, results_dir, _ = scenario
    out = results_dir / "tables"
    assert tables_cli.main(["--results-dir", str(results_dir), "--recipe", str(recipe.path), "-q"]) == 0
    first = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert {"synth.md", "synth.tex", "synth.csv", "README.md", "synth_per_class_iou.png", "synth_loss.png"} <= set(first)
    shutil.rmtree(out)
    assert tables_cli.main(["--results-dir", str(results_dir), "--recipe", str(recipe.path), "-q"]) == 0
    second = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert first == second
    text = first["synth.md"].decode()
    assert "2026" not in text  # no timestamps from result files or the clock


def test_default_discovers_recipes_with_results(tmp_path, capsys):
    smoke = recipes.load_recipe("smoke", resolve=False)
    results_dir = tmp_path / "results"
    folder = results_dir / "smoke"
    folder.mkdir(parents=True)
    for variant, seed, s in smoke.expected_results()[:2]:
        data = {"schema": "npe-result/1", "status": "ok", "variant": variant, "seed": seed, "scale_factor": s,
                "scale_factor_value": s, "metrics": {"mIoU": 40.0, "mDice": 50.0, "mAcc": 60.0, "aAcc": 70.0}}
        (folder / f"{result_files.result_stem(variant, seed, s)}.json").write_text(json.dumps(data))
    orphan = results_dir / "no_such_recipe"
    orphan.mkdir()
    (orphan / "x.json").write_text("{}")
    assert tables_cli.main(["--results-dir", str(results_dir), "--no-figures"]) == 0
    captured = capsys.readouterr()
    assert "no_such_recipe" in captured.err and "skipped" in captured.err
    out = results_dir / "tables"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "smoke.csv", "smoke.md", "smoke.tex",
                                                     "smoke_paired.csv", "smoke_paired.tex"]
    md = (out / "smoke.md").read_text()
    assert "missing: 1 (seed 0)" in md  # npe1 rows were never run
    assert "head mIoU" not in md  # no per-class data: no thirds


def test_empty_results_dir_writes_index(tmp_path):
    (tmp_path / "nothing").mkdir()
    assert tables_cli.main(["--results-dir", str(tmp_path / "nothing"), "-q"]) == 0
    assert "No result files yet" in (tmp_path / "nothing" / "tables" / "README.md").read_text()


def test_missing_results_dir_is_one_line_and_creates_nothing(tmp_path, capsys):
    """Issue 18: a misspelt --results-dir was created and the command exited 0."""
    with pytest.raises(SystemExit) as exit_:
        tables_cli.main(["--results-dir", str(tmp_path / "typo"), "-q"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: --results-dir") and len(err.splitlines()) == 1
    assert "does not exist" in err and list(tmp_path.iterdir()) == []


def test_latex_escape():
    assert tables.latex_escape("npe_1 50% & Δ ±") == r"npe\_1 50\% \& $\Delta$ $\pm$"


def test_prior_stats_per_seed_fits(tmp_path):
    recipe = write_recipe(tmp_path)
    share = np.array(SHARE)
    # seed 0 learns -2 log(share) + 3 (slope 2), seed 1 learns -log(share) - 1 (slope 1): mean 1.5;
    # the table reports the learned log-prior (minus the PEM output): Spearman +1 against log share
    priors = {0: (-2 * np.log(share) + 3).tolist(), 1: (-np.log(share) - 1).tolist()}
    results = tmp_path / "results"
    for seed, prior in priors.items():
        for s in (1, 2):
            dump(results, recipe, make_result(recipe, "npe1", seed, s, [50.0] * 7, 50.0, 60.0, prior=prior))
    summary = stats.summarize(recipe, result_files.read_results(results, recipe.name))
    ((name, rho, slope, n),) = summary.priors
    assert name == "npe1" and n == 2
    assert rho.mean == pytest.approx(1.0) and rho.std == pytest.approx(0.0)
    assert slope.mean == pytest.approx(1.5) and slope.std == pytest.approx(statistics.stdev([2.0, 1.0]))
    md = tables.render_markdown(summary)
    assert ("npe1: Spearman +1.000 ± 0.000, slope 1.50 ± 0.71 (mean ± std of per-seed values, 2 seeds)"
            in md)


@pytest.mark.parametrize("change, message", [
    ({"metrics": "oops"}, "metrics: expected an object of numbers"),
    ({"metrics": None}, "metrics: expected an object of numbers"),
    ({"metrics": {"mIoU": "50.0"}}, "metrics.mIoU: expected a percentage"),
    ({"metrics": {"mIoU": 150.0}}, "metrics.mIoU: expected a percentage"),
    ({"seed": 3}, "which belongs in baseline__seed3__s1.json"),
    ({"seed": -1}, "seed: expected an integer >= 0"),
    ({"per_class": {"IoU": "x"}}, "per_class.IoU: expected a list"),
    ({"iterations": -5}, "iterations: expected an integer >= 0"),
])
def test_altered_result_file_is_not_done_and_one_line_in_tables(tmp_path, capsys, change, message):
    """A result file that parses but breaks the contract: not done for the driver (redone), one
    error line naming the file and the fix in npe-tables (no crash, no wrong row)."""
    recipe = write_recipe(tmp_path)
    results_dir = tmp_path / "results"
    data = make_result(recipe, "baseline", 0, 1.0, [50.0] * 7, 50.0, 60.0)
    path = dump(results_dir, recipe, data)
    assert result_files.is_done(path)
    path.write_text(json.dumps({**data, **change}))
    assert not result_files.is_done(path)
    with pytest.raises(SystemExit) as exc:
        tables_cli.main(["--results-dir", str(results_dir), "--recipe", str(recipe.path), "--no-figures"])
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and path.name in err[0] and message in err[0], err
    assert "Traceback" not in err[0]


def test_two_table_builds_at_once_never_collide(tmp_path):
    """Two real npe-tables processes over the same results, several rounds: both succeed every time,
    the tables are whole (equal to a build alone), and no temporary file is left. Before, figures were
    written through one fixed temporary name, so one build renamed away the other's file."""
    import os
    import subprocess
    import sys

    from npe.paths import repo_root

    results = tmp_path / "results"
    shutil.copytree(repo_root() / "results" / "longtail_synth", results / "longtail_synth")
    cmd = [str(Path(sys.executable).parent / "npe-tables"), "--results-dir", str(results), "-q"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for _ in range(4):
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert not any("Traceback" in err for _, err in outs), outs
        assert not list((results / "tables").glob(".*")), sorted((results / "tables").iterdir())
    together = {p.name: p.read_bytes() for p in sorted((results / "tables").iterdir())}
    shutil.rmtree(results / "tables")
    assert subprocess.run(cmd, env=env, timeout=300).returncode == 0
    alone = {p.name: p.read_bytes() for p in sorted((results / "tables").iterdir())}
    assert together == alone and "longtail_synth_per_class_iou.png" in alone


def test_results_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    """Before: a NotADirectoryError/FileExistsError traceback when the tables folder was made."""
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(SystemExit) as exc:
        tables_cli.main(["--results-dir", str(tmp_path / "a_file"), "-q"])
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: --results-dir") and "a_file" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.parametrize("name", ["longtail_synth", "longtail_synth_long"])
def test_compact_summary_fits_100_columns(name):
    """What npe-repro prints at the end, over the committed results: every row, at most 100 columns."""
    from npe.results import read_results
    from npe.stats import summarize

    recipe = recipes.load_recipe(name, resolve=False)
    summary = summarize(recipe, read_results(Path(__file__).resolve().parents[1] / "results", name,
                                             recipe.dataset))
    text = tables.render_summary(summary)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100 and not any(line.endswith("…") for line in lines)
    assert len(lines) == 3 + len(summary.rows)
    auto = next(line for line in lines if line.startswith("npe1 ") and "auto (" in line)
    row = next(r for r in summary.rows if r.variant == "npe1" and r.s == "auto")
    assert f"{row.stats['mIoU'].mean:.2f} ± {row.stats['mIoU'].std:.2f}" in auto
    assert f"{row.delta['mIoU']:+.2f}" in auto and f"{row.thirds[-1].mean:.2f}" in auto
