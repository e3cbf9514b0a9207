"""Reproduction check (``npe-tables --compare``): passes on identical results, fails naming the row
when one result file is altered beyond the recipe's tolerance, and counts missing rows as failures."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_tables import dump, make_result, write_recipe

from npe.cli.tables import main
from npe.compare import compare


def _results(tmp_path):
    recipe = write_recipe(tmp_path, decomposition=True)
    rng = np.random.default_rng(3)
    results = tmp_path / "results"
    for variant, seed, s in recipe.expected_results():
        iou = [round(float(x), 3) for x in rng.uniform(10, 90, size=7)]
        dump(results, recipe, make_result(recipe, variant, seed, s, iou, round(float(rng.uniform(40, 60)), 3),
                                          round(float(rng.uniform(50, 70)), 3),
                                          chosen=2.0 if s == "auto" else None))
    other = tmp_path / "other"
    shutil.copytree(results, other)
    return recipe, results, other


def test_identical_results_pass(tmp_path, capsys):
    recipe, results, other = _results(tmp_path)
    found = compare(recipe, results, other)
    assert found and all(c.status == "ok" and c.diff == 0 for c in found)
    assert {c.variant for c in found} >= {"baseline", "counted_la", "npe1", "npe_main_only", "npe_counted_la"}
    code = main(["--results-dir", str(results), "--recipe", str(recipe.path), "--compare", str(other), "-q"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "| variant" in out.out and "every row within ±1 points" in out.out


def test_altered_result_fails_naming_the_row(tmp_path, capsys):
    recipe, results, other = _results(tmp_path)
    path = other / recipe.name / "npe1__seed1__s2.json"
    data = json.loads(path.read_text())
    data["metrics"]["mIoU"] += 4.5  # mean over 3 seeds moves by 1.5 > tolerance 1.0
    path.write_text(json.dumps(data))
    code = main(["--results-dir", str(results), "--recipe", str(recipe.path), "--compare", str(other), "-q"])
    out = capsys.readouterr()
    assert code == 1
    assert "npe1 s=2 mIoU (diff -1.50 > 1)" in out.err
    assert "OUT" in out.out and "npe1 s=1" not in out.err


def test_missing_row_is_not_comparable(tmp_path, capsys):
    recipe, results, other = _results(tmp_path)
    for p in (other / recipe.name).glob("npe_main_only__*.json"):
        p.unlink()
    found = compare(recipe, results, other)
    assert {c.status for c in found if c.variant == "npe_main_only"} == {"missing"}
    code = main(["--results-dir", str(results), "--recipe", str(recipe.path), "--compare", str(other), "-q"])
    assert code == 1 and "npe_main_only s=inf" in capsys.readouterr().err


def test_other_folder_without_results_is_one_line_error(tmp_path, capsys):
    recipe, results, _ = _results(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["--results-dir", str(results), "--recipe", str(recipe.path), "--compare", str(tmp_path / "empty"), "-q"])
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: --compare:")


@pytest.mark.parametrize("fault", ["foreign", "mislabelled"])
def test_foreign_or_mislabelled_file_on_the_other_side_is_one_line_before_tables(tmp_path, capsys, fault):
    """Issue 18 (found by the probe): the tables of this side were written, then the other side's
    file refused; now the refusal comes first and nothing is written."""
    recipe, results, other = _results(tmp_path)
    target = other / recipe.name / "baseline__seed0__s1.json"
    data = json.loads((other / recipe.name / "npe1__seed0__s2.json").read_text())
    if fault == "foreign":
        data = json.loads(target.read_text())
        data["recipe"]["name"] = "longtail_synth"
    target.write_text(json.dumps(data))
    with pytest.raises(SystemExit) as exc:
        main(["--results-dir", str(results), "--recipe", str(recipe.path), "--compare", str(other), "-q"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exc.value.code == 2 and len(err) == 1 and str(target) in err[0], err
    assert not (results / "tables").exists()
