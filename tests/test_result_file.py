"""The result file as one pydantic model (npe/result_file.py): the committed files read back
unchanged, the writer keeps today's layout, and the JSON Schema in docs/ is the model's."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from npe import recipes
from npe import results as result_files
from npe.paths import repo_root

DATA = Path(__file__).parent / "data" / "result_file"

#: A recipe of its own, so that its sha256 (recorded in the files) never changes with recipes/.
RECIPE_YAML = """\
name: golden
title: "Result-file layout"
paper_table: "Table 9"
dataset: smoke
base_config: npe::smoke_unet.py
protocol: upstream
metrics: [mIoU, mDice, mAcc, aAcc]
seeds: [0]
auto_scale: {metric: mIoU, candidates: [1, 2]}
variants:
  - {name: baseline, num_pem: 0}
  - {name: npe1, num_pem: 1, scale_factors: [1, auto]}
"""

ENV = {"python": "3.11.7", "torch": "2.13.0+cpu", "cuda": None, "gpu": None, "threads": 2,
       "image": {"tag": "npe-kit:cuda", "commit": "abc"}, "gpus": [], "cpu_flags": ["avx2", "fma"]}


def write_golden_runs(results_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """One ok file (s = auto, ints and floats mixed, a dict of loss curves) and one failed file,
    written by :func:`npe.results.write_result` / :func:`npe.results.write_failure`."""
    (tmp_path / "golden.yaml").write_text(RECIPE_YAML)
    recipe = recipes.load_recipe(tmp_path / "golden.yaml", resolve=False)
    item = {"variant": "npe1", "s": "auto", "value": 2.0, "adjustment": "npe",
            "auto": {"metric": "mIoU", "split": "holdout", "candidates": {"1": 50.5, "2": 61}},
            "options": {"num_pem": 1, "pem_type": "auto", "freeze_backbone": False, "freeze_decode": False},
            "learned_prior": [-1.25, 0.5, 0.75],
            "row": {"metrics": {"aAcc": 90.25, "mIoU": 61, "mAcc": 70.125, "mDice": None},
                    "per_class": {"classes": ["a", "b", "c"], "IoU": [99.5, 50, None], "Acc": [1.0, 2.0, 3.0],
                                  "Dice": [4.5, 5.5, 6.5], "confusion": [[10, 2, 0], [1, 7, 0], [0, 0, 0]]}}}
    record = {"iterations": 20, "wall_time_s": 3.21, "checkpoint": "/w/npe1__seed0/iter_20.pth",
              "distributed": {"launcher": "none", "world_size": 1, "batch_per_process": 4, "total_batch": 4},
              "device": "cpu"}
    loss = {"loss": [[10, 1.5], [20, 0.75]], "loss_ce": [[10, 1.0], [20, 0.5]]}
    ok = result_files.write_result(results_dir, recipe, train_key="pem1-abc", protocol="upstream", seed=0,
                                   item=item, record=record, share=[0.5, 0.25, 0.25], loss=loss, env=ENV)
    failed = result_files.write_failure(results_dir, recipe, train_key="pem0-abc", protocol="upstream", seed=0,
                                        variant="baseline", s=1.0, error="RuntimeError: out of memory", env=ENV)
    return ok, failed


def _without_time(text: str) -> str:
    return re.sub(r'"created": "[^"]*"', '"created": "<time>"', text)


def _committed() -> list[Path]:
    files = sorted(p for p in (repo_root() / "results").glob("*/*.json") if p.name != "index.json")
    assert len(files) >= 150, "the committed results are gone?"
    return files


def test_every_committed_result_file_reads_back_byte_identical():
    """load -> dump gives the same JSON (same keys, values and order) and the same bytes."""
    for path in _committed():
        text = path.read_text(encoding="utf-8")
        run = result_files.parse_result(path)
        assert run.result.to_dict() == json.loads(text), path
        assert list(run.result.to_dict()) == list(json.loads(text)), path
        assert run.result.to_json() == text, f"{path}: not byte-identical after load and dump"


def test_the_writer_keeps_todays_layout(tmp_path):
    """The files of today's writer (tests/data/result_file, written by npe/results.py before the model
    existed, ``created`` masked) come out byte for byte from the same inputs."""
    ok, failed = write_golden_runs(tmp_path / "results", tmp_path)
    assert _without_time(ok.read_text()) == (DATA / "ok.json").read_text()
    assert _without_time(failed.read_text()) == (DATA / "failed.json").read_text()
    run = result_files.parse_result(ok, "smoke")
    assert run.result.metrics["mIoU"] == 61 and isinstance(run.result.metrics["mIoU"], int)  # not 61.0
    assert run.result.options.num_pem == 1 and run.result.per_class.IoU == [99.5, 50, None]
    assert run.s == "auto" and run.result.scale_factor_value == 2.0 and run.result.training_device == "cpu"
    assert not result_files.parse_result(failed).ok and result_files.parse_result(failed).result.error


def test_the_driver_writes_files_that_read_back_unchanged(local_smoke):
    """Files of a real ``npe-repro smoke`` run: every field of the model in its order, and load -> dump
    gives the same bytes."""
    files = sorted((local_smoke / "results" / "smoke").glob("*.json"))
    assert len(files) >= 3
    order = [f.alias or name for name, f in result_files.ResultFile.model_fields.items() if name != "error"]
    for path in files:
        text = path.read_text()
        assert list(json.loads(text)) == order, path
        assert result_files.parse_result(path, "smoke").result.to_json() == text


def test_unknown_keys_are_kept_and_no_default_is_added(tmp_path):
    """A hand-made file with only some fields (and one the model does not name) dumps back as it was."""
    folder = tmp_path / "hand"
    folder.mkdir()
    data = {"schema": "npe-result/1", "status": "ok", "variant": "npe1", "seed": 2, "scale_factor": 2,
            "metrics": {"mIoU": 40, "mDice": None}, "note": {"by": "hand"}}
    path = folder / "npe1__seed2__s2.json"
    path.write_text(json.dumps(data))
    run = result_files.parse_result(path)
    assert run.result.to_dict() == data and run.s == 2.0 and run.metric("mIoU") == 40.0
    assert run.result.recipe is None and run.per_class() is None and run.vector("learned_prior") is None


@pytest.mark.parametrize("change, message", [
    ({"status": "done"}, "status: expected 'ok' or 'failed', got 'done'"),
    ({"variant": ""}, "variant: expected a non-empty string, got ''"),
    ({"seed": "0"}, "seed: expected an integer, got '0'"),
    ({"seed": True}, "seed: expected an integer, got True"),
    ({"scale_factor": 0}, "scale_factor: expected a number > 0, 'auto' or 'inf', got 0"),
    ({"recipe": {"sha256": "x"}}, "recipe: expected an object with the recipe's name, got {'sha256': 'x'}; "
                                  "delete the file and rerun the recipe"),
    ({"metrics": {}}, "metrics: expected an object of numbers, got {}; delete the file"),
    ({"metrics": {"mIoU": float("nan")}}, "metrics.mIoU: expected a percentage in [0, 100], got nan"),
    ({"per_class": [1]}, "per_class: expected an object, got [1]"),
    ({"per_class": {"Dice": [50, 101]}}, "per_class.Dice: expected a list of percentages in [0, 100] (or null)"),
    ({"learned_prior": [1.0, False]}, "learned_prior: expected a list of numbers, got [1.0, False]"),
    ({"scale_factor_value": "auto"}, "scale_factor_value: expected a number > 0 or 'inf', got 'auto'"),
])
def test_a_broken_field_is_one_line_naming_file_and_key(tmp_path, change, message):
    folder = tmp_path / "r"
    folder.mkdir()
    data = {"schema": "npe-result/1", "status": "ok", "variant": "npe1", "seed": 0, "scale_factor": 1.0,
            "metrics": {"mIoU": 40.0}, **change}
    path = folder / "npe1__seed0__s1.json"
    path.write_text(json.dumps(data))
    with pytest.raises(result_files.ResultFileError) as exc:
        result_files.parse_result(path)
    assert str(exc.value).startswith(f"{path}: ") and message in str(exc.value) and "\n" not in str(exc.value)
    assert not isinstance(exc.value, result_files.ForeignResultError)


def test_the_writer_refuses_data_that_breaks_the_contract(tmp_path):
    """A writer bug (here a metric as a string) stops with one line instead of a file every reader refuses."""
    (tmp_path / "golden.yaml").write_text(RECIPE_YAML)
    recipe = recipes.load_recipe(tmp_path / "golden.yaml", resolve=False)
    item = {"variant": "baseline", "s": 1.0, "value": 1.0, "adjustment": "none", "auto": None, "options": {},
            "learned_prior": None, "row": {"metrics": {"mIoU": "61"}}}
    record = {"iterations": 1, "wall_time_s": 1.0, "checkpoint": "c.pth"}
    with pytest.raises(result_files.ResultFileError, match=r"\(not written\): metrics.mIoU: expected a percentage"):
        result_files.write_result(tmp_path, recipe, train_key="k", protocol="upstream", seed=0, item=item,
                                  record=record, share=[1.0], loss=[], env={})
    assert not list(tmp_path.glob("golden/*"))


def test_the_committed_json_schema_is_the_models():
    """docs/result_file.schema.json cannot drift from the model."""
    from npe.result_file import SCHEMA_PATH, json_schema_text

    assert SCHEMA_PATH == repo_root() / "docs" / "result_file.schema.json"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == json_schema_text(), (
        "docs/result_file.schema.json is stale; regenerate it: "
        "python -c 'from npe.result_file import write_json_schema; write_json_schema()'")
    schema = json.loads(json_schema_text())
    assert schema["required"] == ["schema", "status", "variant", "seed", "scale_factor"]
    assert schema["properties"]["schema"]["const"] == "npe-result/1"
