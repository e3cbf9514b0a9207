"""The result file (``npe-result/1``) as one pydantic model: what the writer writes, what the reader
checks, and its JSON Schema (``docs/result_file.schema.json``) come from :class:`ResultFile`.

A file that breaks the contract is named in one line, ``<file>: <key>: expected ..., got ...``
(:class:`npe.errors.ResultFileError`). Keys the model does not name are kept as they are, and a
file read and dumped again keeps the keys it had (none added, none dropped), in the writer's order.
Where a file lies (its folder and file name) is checked by :mod:`npe.results`, which knows the folder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WrapValidator, model_validator
from pydantic_core import PydanticCustomError

from npe.constants import AUTO, INF, RESULT_SCHEMA
from npe.errors import ResultFileError
from npe.recipe_schema import expecting

#: Where the generated JSON Schema is committed (a test holds it equal to the model's).
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "result_file.schema.json"

#: How a damaged finished run is fixed: the driver redoes a file the contract refuses.
FIX = "delete the file and rerun the recipe (npe-repro redoes it)"

__all__ = ["ResultHeader", "ResultFile", "RecipeRef", "Options", "PerClass", "FIX", "SCHEMA_PATH",
           "check_header", "check_file", "json_schema_text", "write_json_schema"]


def _expect(expected: str, shape: Callable[[Any], bool] | None = None) -> WrapValidator:
    """``expected ..., got <repr>`` for a value the wrapped type (or ``shape``) refuses."""
    return expecting(expected, kind="result", shown=repr, shape=shape)


def _seed(value: Any, handler) -> Any:
    """Two messages as before: the type, then the range."""
    try:
        return handler(value)
    except ValidationError:
        what = "an integer >= 0" if isinstance(value, int) and not isinstance(value, bool) else "an integer"
        raise PydanticCustomError("result", "expected {what}, got {got}", {"what": what, "got": repr(value)}) from None


def _number(**bounds: Any) -> Any:
    """An int or a float (never a bool), kept as it is so that a file dumps back unchanged (a float
    type would turn ``61`` into ``61.0``). ``allow_inf_nan`` applies to the float."""
    finite = {"allow_inf_nan": bounds.pop("allow_inf_nan")} if "allow_inf_nan" in bounds else {}
    return Union[Annotated[int, Field(**bounds)], Annotated[float, Field(**bounds, **finite)]]


Number = _number()
Percent = _number(ge=0, le=100, allow_inf_nan=False)
Positive = _number(gt=0)   # inf allowed: s = inf is no adjustment
Percentages = Annotated[Optional[list[Optional[Percent]]],
                        _expect("expected a list of percentages in [0, 100] (or null)")]
Numbers = Annotated[Optional[list[Optional[Number]]], _expect("expected a list of numbers")]


#: What the required fields hold: the message of a wrong value and of a missing key.
_REQUIRED = {"schema": f"expected {RESULT_SCHEMA!r}", "status": "expected 'ok' or 'failed'",
             "variant": "expected a non-empty string", "seed": "expected an integer",
             "scale_factor": f"expected a number > 0, {AUTO!r} or {INF!r}"}


class _Model(BaseModel):
    """Strict types (no "50" for 50), unknown keys kept, read-only once checked."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True, populate_by_name=True)


class RecipeRef(_Model):
    """The recipe that wrote the file: its name (= the folder the file lies in) and content hash."""

    name: Annotated[str, Field(min_length=1)]
    sha256: Optional[str] = None
    paper_table: Optional[str] = None


class Options(_Model):
    """The NPE options of the trained model (``num_pem: 0`` = the baseline)."""

    num_pem: Optional[Annotated[int, Field(ge=0)]] = None
    pem_type: Optional[str] = None
    freeze_backbone: Optional[bool] = None
    freeze_decode: Optional[bool] = None


class PerClass(_Model):
    """Per-class results, in the dataset's class order."""

    classes: Optional[list[str]] = None
    IoU: Percentages = None
    Acc: Percentages = None
    Dice: Percentages = None
    confusion: Optional[list[list[Number]]] = Field(None, description="C x C pixel counts, rows = ground truth")


class ResultHeader(_Model):
    """The fields every result file has, ok or failed (one run: variant x seed x scale factor)."""

    schema_id: Annotated[Literal[RESULT_SCHEMA], _expect(_REQUIRED["schema"])] = Field(alias="schema")
    status: Annotated[Literal["ok", "failed"], _expect(_REQUIRED["status"])]
    recipe: Annotated[Optional[RecipeRef], _expect("expected an object with the recipe's name")] = None
    dataset: Annotated[Optional[str], _expect("expected a dataset name")] = None
    variant: Annotated[str, Field(min_length=1), _expect(_REQUIRED["variant"])]
    train_key: Optional[str] = Field(None, description="variants with equal train_key share one trained model")
    seed: Annotated[int, Field(ge=0), WrapValidator(_seed)]
    scale_factor: Annotated[Union[Literal[AUTO, INF], Positive],
                            _expect(_REQUIRED["scale_factor"])] = Field(
        description=f"s as the recipe gives it: a number, {AUTO!r}, or {INF!r} (no adjustment)")
    protocol: Optional[str] = None
    environment: Optional[dict[str, Any]] = Field(None, description="versions and machine (npe.provenance)")
    created: Optional[str] = Field(None, description="ISO 8601 UTC, second resolution, Z suffix")


class ResultFile(ResultHeader):
    """One result file. A finished run (``status: ok``) has its metrics; a failed one its ``error``."""

    adjustment: Optional[str] = Field(None, description="'none', 'npe' or 'counted_la'")
    scale_factor_value: Annotated[Optional[Union[Literal[INF], Positive]],
                                  _expect(f"expected a number > 0 or {INF!r}")] = Field(
        None, description="the s actually used (the chosen one for 'auto')")
    auto_scale: Optional[dict[str, Any]] = Field(None, description="how an 'auto' s was chosen")
    options: Annotated[Optional[Options], _expect("expected an object of the model options")] = None
    iterations: Annotated[Optional[Annotated[int, Field(ge=0)]], _expect("expected an integer >= 0")] = None
    wall_time_s: Annotated[Optional[Number], _expect("expected a number")] = None
    checkpoint: Optional[str] = None
    distributed: Optional[dict[str, Any]] = Field(None, description="launcher, world_size, batch sizes")
    training_device: Optional[str] = None
    metrics: Annotated[Optional[dict[str, Annotated[Optional[Percent], _expect("expected a percentage in [0, 100]")]]],
                       _expect("expected an object of numbers", lambda v: v is None or isinstance(v, dict))] = None
    per_class: Annotated[Optional[PerClass], _expect("expected an object",
                                                      lambda v: v is None or isinstance(v, dict))] = None
    class_pixel_share: Numbers = Field(None, description="training-set pixel share per class")
    learned_prior: Numbers = Field(None, description="per-class mean of the centred PEM output")
    log: Optional[dict[str, Any]] = Field(None, description="loss curves: name -> [[iteration, value], ...]")
    error: Optional[str] = None

    @model_validator(mode="after")
    def _finished_runs_have_metrics(self) -> "ResultFile":
        if self.status == "ok" and not self.metrics:
            raise PydanticCustomError("result", "metrics: expected an object of numbers, got {got}",
                                      {"got": repr(self.metrics)})
        return self

    @property
    def ok(self) -> bool:
        """A finished run."""
        return self.status == "ok"

    @property
    def pem_options(self) -> Options:
        """``options``, or one of unknown options (all None) where the file has none."""
        return self.options or Options()

    def to_dict(self) -> dict[str, Any]:
        """The file's JSON content: the keys it was made with, in the model's order, then unknown ones."""
        return self.model_dump(by_alias=True, exclude_unset=True)

    def to_json(self) -> str:
        """The file's text, laid out as the writer always did (one space per level for a finished run,
        two for a failed one; one trailing newline)."""
        return json.dumps(self.to_dict(), indent=1 if self.ok else 2) + "\n"


#: Checks in the order the hand validator made them, so one damaged file gives the same line.
_ORDER = ("schema", "variant", "seed", "scale_factor", "status", "recipe", "dataset", "metrics", "per_class",
          "class_pixel_share", "learned_prior", "scale_factor_value", "iterations")
_SUFFIX = {"recipe": "; delete the file and rerun the recipe"}


def _line(where: str, exc: ValidationError) -> str:
    """The first broken rule of ``exc`` as ``<where>: <key>: <message>`` (one line)."""
    errors = exc.errors(include_url=False)
    rank = {key: i for i, key in enumerate(_ORDER)}
    first = min(errors, key=lambda e: rank.get(str(e["loc"][0]) if e["loc"] else "metrics", len(_ORDER)))
    loc = [str(p) for p in first["loc"]]
    if not loc:   # the model's own rule: its message names the key
        return f"{where}: {first['msg']}; {FIX}"
    top = loc[0]
    if first["type"] == "missing" and len(loc) == 1:
        message = f"{_REQUIRED.get(top, 'expected a value')}, got None"
    elif first["type"] == "result":
        message = first["msg"]
    else:
        message = f"{first['msg']}, got {first.get('input')!r}"
    suffix = _SUFFIX.get(top, "" if top in ResultHeader.model_fields or top == "schema" else f"; {FIX}")
    return f"{where}: {'.'.join(loc)}: {message}{suffix}"


def check_header(data: Any, where: str) -> ResultHeader:
    """The fields every file has; :class:`ResultFileError` (one line) when one breaks the contract."""
    if not isinstance(data, dict):
        raise ResultFileError(f"{where}: schema: expected {RESULT_SCHEMA!r}, got None")
    try:
        return ResultHeader.model_validate(data)
    except ValidationError as exc:
        raise ResultFileError(_line(where, exc)) from None


def check_file(data: dict, where: str) -> ResultFile:
    """The whole file (:func:`check_header` first for the header's messages)."""
    try:
        return ResultFile.model_validate(data)
    except ValidationError as exc:
        raise ResultFileError(_line(where, exc)) from None


def json_schema_text() -> str:
    """The JSON Schema of :class:`ResultFile`, as committed in ``docs/result_file.schema.json``."""
    schema = ResultFile.model_json_schema(by_alias=True)
    schema["$id"] = RESULT_SCHEMA
    return json.dumps(schema, indent=2) + "\n"


def write_json_schema(path: str | Path = SCHEMA_PATH) -> Path:
    """Regenerate the committed JSON Schema (after a change to the model)."""
    path = Path(path)
    path.write_text(json_schema_text(), encoding="utf-8")
    return path
