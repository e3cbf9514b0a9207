"""The result-file contract (``npe-result/1``, docs/internals.md): names, writer and reader.
The file's fields, their checks and its JSON Schema are one model, :class:`npe.result_file.ResultFile`;
this module adds where a file lies (its recipe's folder, its file name) and reading a folder.

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
from pydantic import ValidationError

from npe import paths
from npe.constants import AUTO, INF, RESULT_SCHEMA
from npe.errors import ResultFileError
from npe.files import write_text_atomic
from npe.provenance import utc_now  # the one timestamp format, re-exported
from npe.recipes import Recipe, ScaleFactor, scale_label
from npe.result_file import RecipeRef, ResultFile, ResultHeader, check_file, check_header

#: Folder of the generated tables inside the results folder (never a recipe's).
TABLES_DIRNAME = "tables"

__all__ = ["RESULT_SCHEMA", "ResultFile", "RunResult", "ForeignResultError", "result_stem", "result_path",
           "is_done", "write_result", "write_failure", "parse_result", "read_results", "check_recipe_folder",
           "group_results", "discover", "load_results", "as_record", "number", "utc_now"]


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
    """The fields every result file has, ok or failed (:class:`npe.result_file.ResultHeader`)."""
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


def _write(results_dir: str | Path, recipe: Recipe, s: ScaleFactor, fields: dict) -> Path:
    """Check ``fields`` against the model and write the file atomically: data that breaks the
    contract stops here, named in one line, instead of being written and refused by every reader."""
    path = result_path(results_dir, recipe.name, fields["variant"], fields["seed"], s)
    result = check_file(fields, f"{path} (not written)")
    return write_text_atomic(path, result.to_json())


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
    fields = _header(recipe, item["variant"], seed, item["s"], train_key=train_key, protocol=protocol,
                     status="ok", env=env)
    fields.update({
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
    return _write(results_dir, recipe, item["s"], fields)


def write_failure(results_dir: str | Path, recipe: Recipe, *, train_key: str, protocol: str, seed: int,
                  variant: str, s: ScaleFactor, error: str, env: dict) -> Path:
    """A failed run is recorded, never silently dropped (tables show it as failed)."""
    fields = _header(recipe, variant, seed, s, train_key=train_key, protocol=protocol, status="failed", env=env)
    fields["error"] = error
    return _write(results_dir, recipe, s, fields)


# --------------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class RunResult:
    """One result file: its name and its checked content (:class:`npe.result_file.ResultFile`)."""

    file: str
    result: ResultFile

    @property
    def variant(self) -> str:
        return self.result.variant

    @property
    def seed(self) -> int:
        return self.result.seed

    @property
    def s(self) -> ScaleFactor:
        """The scale factor as recipes give it: a float, ``"auto"``, or ``math.inf``."""
        s = self.result.scale_factor
        return AUTO if s == AUTO else math.inf if s == INF else float(s)

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def data(self) -> dict[str, Any]:
        """The file's JSON content as a plain dict (what :func:`load_results` returns)."""
        return self.result.to_dict()

    @property
    def s_label(self) -> str:
        return scale_label(self.s)

    def metric(self, name: str) -> float | None:
        return number((self.result.metrics or {}).get(name))

    def per_class(self, key: str = "IoU") -> np.ndarray | None:
        return _array(getattr(self.result.per_class, key, None))

    def vector(self, key: str) -> np.ndarray | None:
        """A list field of the file (``class_pixel_share``, ``learned_prior``) as floats, NaN for null."""
        return _array(getattr(self.result, key, None))


def _array(values: Any) -> np.ndarray | None:
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
    ``dataset``: its recipe's dataset; a file recording another one is a :class:`ForeignResultError`.
    The order of the checks gives one line for the first problem: the fields every file has, then
    where the file lies (folder, file name), then the rest of the file."""
    path = Path(path)
    where = f"{path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFileError(f"{where}: not a readable JSON result file ({' '.join(str(exc).split())}); "
                              "delete it and rerun the recipe") from None
    header = check_header(data, where)
    _check_home(header, path, dataset)
    variant, seed, s = header.variant, header.seed, header.scale_factor
    expected = f"{result_stem(variant, seed, s)}.json"
    if path.name != expected:
        raise ResultFileError(f"{where}: holds {variant} seed {seed} s={scale_label(s)}, which belongs in "
                              f"{expected}; delete the file and rerun the recipe")
    return RunResult(file=path.name, result=check_file(data, where))


def _check_home(header: ResultHeader, path: Path, dataset: str | None = None) -> None:
    """The recipe (and dataset) a file records must be those of the folder it lies in: a file of
    another recipe copied under this recipe's file name would otherwise count as this recipe's run."""
    if header.recipe is None:   # hand-made files without the field: nothing to check against
        return
    name = header.recipe.name
    folder = path.parent.name
    home = path.parent.parent / name
    if name != folder:
        raise ForeignResultError(f"{path}: a result of recipe {name}, not of {folder} (copied or moved "
                                 f"here?); move it to {home}/ or delete it, then run again")
    recorded = header.dataset
    if dataset is not None and recorded is not None and recorded != dataset:
        raise ForeignResultError(f"{path}: records dataset {recorded!r}, but recipe {folder} uses {dataset!r} "
                                 "(a result of another recipe renamed?); move it away or delete it, then "
                                 "run again")


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
        if not isinstance(data, dict):
            continue
        try:   # only the two fields that say where the file belongs; other damage is redone
            recipe_ref = None if data.get("recipe") is None else RecipeRef.model_validate(data["recipe"])
        except ValidationError:
            continue
        recorded = data.get("dataset") if isinstance(data.get("dataset"), str) else None
        _check_home(ResultHeader.model_construct(recipe=recipe_ref, dataset=recorded), path, recipe.dataset)


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
        docs/internals.md) plus ``"path"``.

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
                records.append(as_record(r, root / name / r.file))
    return records


def as_record(result: RunResult, path: str | Path) -> dict[str, Any]:
    """One result file as a plain record: its JSON content plus ``"path"`` (:func:`load_results`)."""
    return {**result.data, "path": str(path)}


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
