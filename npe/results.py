"""The result-file contract (``npe-result/1``, docs/internals.md): names, writer and reader.

One JSON file per (variant, seed, s): ``<results_dir>/<recipe>/<variant>__seed<seed>__s<s>.json``.
The driver (:mod:`npe.run`) writes them with :func:`write_result` / :func:`write_failure`; tables,
figures and :func:`load_results` (``npe.load_results``) read them back with :func:`read_results`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from npe import paths
from npe.constants import AUTO, INF, RESULT_SCHEMA
from npe.errors import ResultFileError
from npe.files import write_json_atomic
from npe.provenance import utc_now  # the one timestamp format, re-exported
from npe.recipes import Recipe, ScaleFactor, scale_label

#: Folder of the generated tables inside the results folder (never a recipe's).
TABLES_DIRNAME = "tables"

__all__ = ["RESULT_SCHEMA", "RunResult", "ForeignResultError", "result_stem", "result_path", "is_done",
           "write_result", "write_failure", "parse_result", "read_results", "check_recipe_folder",
           "group_results", "discover", "load_results", "number", "utc_now"]


class ForeignResultError(ResultFileError):
    """A result file in one recipe's folder that records another recipe (or another dataset): copied
    or moved there by hand. Never redone or overwritten silently: the user decides where it goes."""


# --------------------------------------------------------------------------------------------------
# names


def result_stem(variant: str, seed: int, s: ScaleFactor) -> str:
    """File stem of a result file: ``<variant>__seed<seed>__s<s>`` (docs/internals.md)."""
    return f"{variant}__seed{seed}__s{scale_label(s)}"


def result_path(results_dir: str | Path, recipe_name: str, variant: str, seed: int, s: ScaleFactor) -> Path:
    """``<results_dir>/<recipe>/<variant>__seed<seed>__s<s>.json``."""
    return Path(results_dir) / recipe_name / f"{result_stem(variant, seed, s)}.json"


def is_done(path: str | Path) -> bool:
    """Whether a result file exists, keeps the contract (:func:`parse_result`) and records a finished
    run (``status: ok``); a damaged or altered file is not done, so the driver redoes it."""
    try:
        return parse_result(path).ok
    except ResultFileError:
        return False


# --------------------------------------------------------------------------------------------------
# writing


def _header(recipe: Recipe, variant: str, seed: int, s: ScaleFactor, *, train_key: str, protocol: str,
            status: str, env: dict) -> dict:
    """The fields every result file has, ok or failed (docs/internals.md)."""
    return {"schema": RESULT_SCHEMA, "status": status,
            "recipe": {"name": recipe.name, "sha256": recipe.sha256, "paper_table": recipe.paper_table},
            "dataset": recipe.dataset, "variant": variant, "train_key": train_key,
            "seed": seed, "scale_factor": _json_scale(s),
            "protocol": protocol, "environment": env, "created": utc_now()}


def _json_scale(s: ScaleFactor) -> float | str:
    """s as a result file holds it: a number, ``"auto"``, or ``"inf"`` (no adjustment)."""
    if s == AUTO or s == INF:
        return s
    return INF if math.isinf(float(s)) else float(s)


def write_result(results_dir: str | Path, recipe: Recipe, *, train_key: str, protocol: str, seed: int,
                 item: dict, record: dict, share: list[float], loss: list, env: dict) -> Path:
    """Write the result file of one evaluated (variant, seed, s) atomically; return its path.

    ``item``: ``variant``, ``s``, ``value`` (s used), ``auto`` (how an auto s was chosen),
    ``adjustment``, ``options``, ``learned_prior`` and ``row`` (one dict of
    :func:`npe.evaluation.evaluate`); ``record``: the training's ``iterations``, ``wall_time_s``,
    ``checkpoint``; ``share``: training pixel share per class; ``loss``: the loss curve, or a dict of
    curves (``loss``, ``loss_ce``, ``loss_one_way_logistic``) written as ``log`` as it is.
    """
    row = item["row"]
    payload = _header(recipe, item["variant"], seed, item["s"], train_key=train_key, protocol=protocol,
                      status="ok", env=env)
    payload.update({
        "adjustment": item["adjustment"],
        "scale_factor_value": _json_scale(item["value"]),
        "auto_scale": item["auto"],
        "options": item["options"],
        "iterations": record["iterations"],
        "wall_time_s": record["wall_time_s"],
        "checkpoint": record["checkpoint"],
        "distributed": record.get("distributed"),   # launcher, world_size, batch_per_process, total_batch
        "training_device": record.get("device"),    # where the weights were during training
        "metrics": row["metrics"],
        "per_class": row.get("per_class"),
        "class_pixel_share": share,
        "learned_prior": item["learned_prior"],
        "log": dict(loss) if isinstance(loss, dict) else {"loss": loss},
    })
    return write_json_atomic(result_path(results_dir, recipe.name, item["variant"], seed, item["s"]),
                             payload, indent=1)


def write_failure(results_dir: str | Path, recipe: Recipe, *, train_key: str, protocol: str, seed: int,
                  variant: str, s: ScaleFactor, error: str, env: dict) -> Path:
    """A failed run is recorded, never silently dropped (tables show it as failed)."""
    payload = _header(recipe, variant, seed, s, train_key=train_key, protocol=protocol, status="failed",
                      env=env)
    payload["error"] = error
    return write_json_atomic(result_path(results_dir, recipe.name, variant, seed, s), payload)


# --------------------------------------------------------------------------------------------------
# reading


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
        return number(value)

    def per_class(self, key: str = "IoU") -> np.ndarray | None:
        values = (self.data.get("per_class") or {}).get(key)
        if not isinstance(values, list) or not values:
            return None
        return np.array([np.nan if number(v) is None else float(v) for v in values], dtype=float)

    def vector(self, key: str) -> np.ndarray | None:
        values = self.data.get(key)
        if not isinstance(values, list) or not values:
            return None
        return np.array([np.nan if number(v) is None else float(v) for v in values], dtype=float)


def number(value: Any) -> float | None:
    """A finite-or-NaN JSON number as float; None for NaN, bools and anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def parse_result(path: str | Path, dataset: str | None = None) -> RunResult:
    """One result file, checked against the contract; :class:`ResultFileError` when it breaks it.
    ``dataset``: its recipe's dataset; a file recording another one is a :class:`ForeignResultError`."""
    path = Path(path)
    where = f"{path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFileError(f"{where}: not a readable JSON result file ({' '.join(str(exc).split())}); "
                              "delete it and rerun the recipe") from None
    if not isinstance(data, dict) or data.get("schema") != RESULT_SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else None
        raise ResultFileError(f"{where}: schema: expected {RESULT_SCHEMA!r}, got {got!r}")
    variant, seed, s, status = data.get("variant"), data.get("seed"), data.get("scale_factor"), data.get("status")
    if not isinstance(variant, str) or not variant:
        raise ResultFileError(f"{where}: variant: expected a non-empty string, got {variant!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ResultFileError(f"{where}: seed: expected an integer, got {seed!r}")
    if s not in (AUTO, INF) and (number(s) is None or s <= 0):
        raise ResultFileError(f"{where}: scale_factor: expected a number > 0, 'auto' or 'inf', got {s!r}")
    if status not in ("ok", "failed"):
        raise ResultFileError(f"{where}: status: expected 'ok' or 'failed', got {status!r}")
    if seed < 0:
        raise ResultFileError(f"{where}: seed: expected an integer >= 0, got {seed!r}")
    _check_recipe_field(data, path, dataset)
    expected = f"{result_stem(variant, seed, s)}.json"
    if path.name != expected:
        raise ResultFileError(f"{where}: holds {variant} seed {seed} s={scale_label(s)}, which belongs in "
                              f"{expected}; delete the file and rerun the recipe")
    if status == "ok":
        _check_ok_fields(data, where)
    return RunResult(file=path.name, data=data, variant=variant, seed=seed,
                     s=AUTO if s == AUTO else math.inf if s == INF else float(s), ok=status == "ok")


def _check_recipe_field(data: dict, path: Path, dataset: str | None = None) -> None:
    """The recipe (and dataset) a file records must be those of the folder it lies in: a file of
    another recipe copied under this recipe's file name would otherwise count as this recipe's run."""
    recipe = data.get("recipe")
    if recipe is None:   # hand-made files without the field: nothing to check against
        return
    name = recipe.get("name") if isinstance(recipe, dict) else None
    if not isinstance(name, str) or not name:
        raise ResultFileError(f"{path}: recipe: expected an object with the recipe's name, got {recipe!r}; "
                              "delete the file and rerun the recipe")
    folder = path.parent.name
    home = path.parent.parent / name
    if name != folder:
        raise ForeignResultError(f"{path}: a result of recipe {name}, not of {folder} (copied or moved "
                                 f"here?); move it to {home}/ or delete it, then run again")
    recorded = data.get("dataset")
    if dataset is not None and recorded is not None and recorded != dataset:
        raise ForeignResultError(f"{path}: records dataset {recorded!r}, but recipe {folder} uses {dataset!r} "
                                 "(a result of another recipe renamed?); move it away or delete it, then "
                                 "run again")


def _check_ok_fields(data: dict, where: str) -> None:
    """The fields tables read from a finished run: types and ranges (percentages in [0, 100])."""
    fix = "delete the file and rerun the recipe (npe-repro redoes it)"
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise ResultFileError(f"{where}: metrics: expected an object of numbers, got {metrics!r}; {fix}")
    for name, value in metrics.items():
        if value is not None and (number(value) is None or not 0 <= value <= 100):
            raise ResultFileError(f"{where}: metrics.{name}: expected a percentage in [0, 100], got "
                                  f"{value!r}; {fix}")
    per_class = data.get("per_class")
    if per_class is not None:
        if not isinstance(per_class, dict):
            raise ResultFileError(f"{where}: per_class: expected an object, got {per_class!r}; {fix}")
        for key in ("IoU", "Acc", "Dice"):
            values = per_class.get(key)
            if values is None:
                continue
            if not isinstance(values, list) or any(
                    v is not None and (number(v) is None or not 0 <= v <= 100) for v in values):
                raise ResultFileError(f"{where}: per_class.{key}: expected a list of percentages in "
                                      f"[0, 100] (or null), got {values!r}; {fix}")
    for key in ("class_pixel_share", "learned_prior"):
        values = data.get(key)
        if values is not None and (not isinstance(values, list) or any(
                v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))) for v in values)):
            raise ResultFileError(f"{where}: {key}: expected a list of numbers, got {values!r}; {fix}")
    value = data.get("scale_factor_value")
    if value is not None and value != INF and (number(value) is None or value <= 0):
        raise ResultFileError(f"{where}: scale_factor_value: expected a number > 0 or 'inf', got {value!r}; "
                              f"{fix}")
    iterations = data.get("iterations")
    if iterations is not None and (isinstance(iterations, bool) or not isinstance(iterations, int)
                                   or iterations < 0):
        raise ResultFileError(f"{where}: iterations: expected an integer >= 0, got {iterations!r}; {fix}")


def read_results(results_dir: str | Path, recipe_name: str, dataset: str | None = None) -> list[RunResult]:
    """All result files of a recipe (``<results_dir>/<recipe_name>/*.json``), sorted by file name.
    ``dataset``: the recipe's dataset; a file recording another one is a :class:`ForeignResultError`."""
    folder = Path(results_dir) / recipe_name
    if not folder.is_dir():
        return []
    return [parse_result(p, dataset) for p in sorted(folder.glob("*.json"))]


def check_recipe_folder(results_dir: str | Path, recipe: Recipe) -> None:
    """Before a driver counts a recipe's runs as done: refuse (:class:`ForeignResultError`, naming the
    file) any file in ``<results_dir>/<recipe>/`` that records another recipe or dataset. Files that
    are merely damaged are left to be redone, as :func:`is_done` says."""
    folder = Path(results_dir) / recipe.name
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict):
            try:
                _check_recipe_field(data, path, recipe.dataset)
            except ForeignResultError:
                raise
            except ResultFileError:
                continue


def group_results(results: Iterable[RunResult]) -> dict[tuple[str, str], dict[int, RunResult]]:
    """Results keyed by (variant, s label) then seed; two files for the same run are an error."""
    groups: dict[tuple[str, str], dict[int, RunResult]] = {}
    for r in results:
        runs = groups.setdefault((r.variant, r.s_label), {})
        if r.seed in runs:
            raise ResultFileError(f"{runs[r.seed].file} and {r.file}: both hold {r.variant} seed {r.seed} "
                                  f"s={r.s_label}; delete the stale one")
        runs[r.seed] = r
    return groups


def discover(results_dir: str | Path) -> list[str]:
    """Names of the folders under ``results_dir`` that hold result files (the tables folder excluded)."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and p.name != TABLES_DIRNAME and any(p.glob("*.json")))


def load_results(recipe: str | None = None, results_dir: str | os.PathLike | None = None, *,
                 only_ok: bool = False) -> list[dict[str, Any]]:
    """The result files of one recipe (or of every recipe with results) as plain records.

    Args:
        recipe: a recipe name (the folder ``<results_dir>/<recipe>``); None = every folder with result
            files.
        results_dir: default ``$NPE_RESULTS_DIR`` or ``<repo>/results``.
        only_ok: leave out failed runs.

    Returns:
        One dict per file, sorted by recipe and file name: the file's JSON content (``variant``,
        ``seed``, ``scale_factor``, ``status``, ``metrics``, ``per_class``, ``environment``, ... as in
        docs/internals.md) plus ``"path"``. ``pandas.json_normalize(records)`` makes it a table.

    Raises:
        npe.errors.ResultFileError: a file is not a readable result file; ``results_dir`` is missing or
            not a folder; ``recipe`` is neither a known recipe nor a folder of results.
    """
    from npe.arguments import check_results_arguments

    check_results_arguments(recipe, results_dir, only_ok)
    root = paths.results_dir(results_dir)
    _check_results_root(root, recipe)
    names = [recipe] if recipe else discover(root)
    records = []
    for name in names:
        for r in read_results(root, name):
            if r.ok or not only_ok:
                records.append({**r.data, "path": str(root / name / r.file)})
    return records


def _check_results_root(root: Path, recipe: str | None) -> None:
    """``load_results``: a missing or misspelt folder is an error, not an empty list. A known recipe
    (``recipes/<name>.yaml``) without results yet gives []."""
    if not root.exists():
        raise ResultFileError(f"results folder {root} does not exist; give results_dir= the folder that "
                              "holds <recipe>/ result folders")
    if not root.is_dir():
        raise ResultFileError(f"results folder {root} is a file, not a folder; give results_dir= the folder "
                              "that holds <recipe>/ result folders")
    if recipe is None or (root / recipe).is_dir():
        return
    from npe.recipes import list_recipes

    if recipe in list_recipes():
        return
    import difflib

    have = discover(root)
    near = difflib.get_close_matches(recipe, have + list_recipes(), n=1)
    raise ResultFileError(f"no recipe {recipe!r} and no folder {root / recipe}" + (f" (did you mean {near[0]!r}?)"
                          if near else "") + f"; recipes with results in {root}: {', '.join(have) or 'none'}")
