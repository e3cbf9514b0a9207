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
