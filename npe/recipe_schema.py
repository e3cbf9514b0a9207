"""The shape of a recipe file as pydantic v2 models (unknown keys forbidden, strict types, literals),
and the one formatter that turns pydantic's first error into the kit's line
``recipes/foo.yaml: variants[2].num_pem: expected an integer >= 0, got 'two'``.

Rules that relate several keys (a baseline needs s = 1, ``auto`` needs ``auto_scale``, ...) are
checked in :mod:`npe.recipes` once the shapes are right.
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Any, Callable, Literal, Mapping, Optional, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError, ValidationInfo, WrapValidator,
                      field_validator)
from pydantic_core import PydanticCustomError

from npe.constants import METRICS
from npe.errors import RecipeError
from npe.options import (DEFAULTS, NUM_PEM, PEM_TYPE, PROTOCOL, RECIPE_SCALE, TRAINED_SCALE,
                         Rule)

#: MMSeg model-zoo file names end in -<first 8 hex digits of the sha256>.pth
ZOO_PREFIX = re.compile(r"-([0-9a-f]{8})\.pth$")


def show(value: Any) -> str:
    """A value as error messages show it (short)."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def expecting(expected: str, *, kind: str = "recipe", shown: Callable[[Any], str] = show,
              shape: Callable[[Any], bool] | None = None) -> WrapValidator:
    """A validator that reports a value the wrapped type refuses as ``expected ..., got <value>``
    (the one wording of recipe and result-file messages; ``kind`` names pydantic's error type).
    With ``shape``, only a value failing that test is reported so: errors inside a container keep
    their own place (``metrics.mIoU``) and message."""
    def refuse(value: Any) -> PydanticCustomError:
        return PydanticCustomError(kind, "{expected}, got {got}", {"expected": expected, "got": shown(value)})

    def wrap(value: Any, handler) -> Any:
        if shape is not None:
            if not shape(value):
                raise refuse(value)
            return handler(value)
        try:
            return handler(value)
        except ValidationError:
            raise refuse(value) from None
    return WrapValidator(wrap)


_message = expecting   # the recipe models' short name for it


def _choice(choices: tuple[str, ...], expected: str | None = None):
    return Annotated[Literal[choices], _message(expected or f"expected one of {', '.join(choices)}")]


Text = Annotated[str, Field(min_length=1, pattern=r"\S"), _message("expected a non-empty string")]
OptionalText = Annotated[Optional[Annotated[str, Field(pattern=r"\S")]],
                         _message("expected a non-empty string or null")]
Flag = Annotated[bool, _message("expected true or false")]
Count = Annotated[int, Field(ge=0), _message("expected an integer >= 0")]


def _rule(rule: Rule, optional: bool = False):
    """A value checked by one rule of :mod:`npe.options` (None allowed when ``optional``), reported
    as ``expected <what the rule takes>, got <value>``."""
    def check(value: Any) -> Any:
        if (optional and value is None) or rule.valid(value):
            return value
        raise PydanticCustomError("recipe", "expected {expected}, got {got}",
                                  {"expected": rule.expected + (" or null" if optional else ""),
                                   "got": show(value)})
    return PlainValidator(check)


Positive = Annotated[float, _rule(TRAINED_SCALE), AfterValidator(float)]
ScaleItem = Annotated[Union[float, str], _rule(RECIPE_SCALE)]
CfgKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$"),
                   _message("expected a dotted config key like 'model.decode_head.dropout_ratio'")]
CfgOptions = Optional[dict[CfgKey, Any]]
NonEmpty = Field(min_length=1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LoadFromFile(_Strict):
    """Initial checkpoint: URL (or local path) and its sha256 (full, or None)."""

    url: Text
    sha256: Annotated[Optional[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]],
                      _message("expected null or 64 lowercase hex digits")] = None

    @field_validator("sha256")
    @classmethod
    def _matches_file_name(cls, sha: str | None, info: ValidationInfo) -> str | None:
        zoo = ZOO_PREFIX.search(str(info.data.get("url", "")))
        if sha and zoo and not sha.startswith(zoo.group(1)):
            raise PydanticCustomError("recipe", "does not start with {prefix}, the prefix in the "
                                      "checkpoint's file name", {"prefix": zoo.group(1)})
        return sha

    @property
    def sha256_prefix(self) -> str | None:
        """The checksum (or its leading digits) the download must match: the full sha256 if given,
        else the 8-digit prefix an MMSeg zoo file name carries, else None."""
        if self.sha256:
            return self.sha256
        match = ZOO_PREFIX.search(self.url)
        return match.group(1) if match else None


class AutoScaleFile(_Strict):
    """How ``s = 'auto'`` is chosen: best ``metric`` over ``candidates`` on the holdout split."""

    metric: _choice(METRICS)
    candidates: tuple[Positive, ...] = NonEmpty

    @field_validator("candidates", mode="before")
    @classmethod
    def _from_yaml_list(cls, value: Any) -> Any:
        # YAML gives a list; the recipe keeps an immutable tuple (strict mode takes only a tuple)
        return tuple(value) if isinstance(value, list) else value


class HoldoutSplitFile(_Strict):
    """A held-out split of an own dataset: its image and label folders under the data root."""

    img_path: Text
    seg_map_path: Text


class OwnDatasetFile(_Strict):
    """A dataset the kit does not prepare: an MMSeg dataset ``config`` (path relative to the recipe or
    ``mmseg::`` name), the ``data_root`` its folders are under (relative to the recipe), and the
    held-out part ``auto`` chooses s on: a split (``holdout_split``) or a drawn ``holdout_fraction``."""

    config: Text
    data_root: Text
    holdout_split: Optional[HoldoutSplitFile] = None
    holdout_fraction: Annotated[Optional[Annotated[float, Field(gt=0, lt=1)]],
                                _message("expected null or a number between 0 and 1 (exclusive)")] = None


class VariantFile(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$"), _message("expected lowercase letters, digits and _")]
    num_pem: Annotated[int, _rule(NUM_PEM)]
    pem_type: Annotated[str, _rule(PEM_TYPE)] = DEFAULTS.pem_type
    freeze_backbone: Flag = DEFAULTS.freeze_backbone
    freeze_decode: Flag = DEFAULTS.freeze_decode
    protocol: Annotated[Optional[str], _rule(PROTOCOL, optional=True)] = None  # None: the recipe's
    scale_factors: list[ScaleItem] = Field(default=[DEFAULTS.scale_factor], min_length=1)
    cfg_options: CfgOptions = None


class RecipeFile(_Strict):
    name: Text
    title: Text
    paper_table: OptionalText = None
    dataset: Any
    base_config: Text
    load_from: Optional[LoadFromFile] = None
    protocol: Annotated[str, _rule(PROTOCOL)]
    metrics: list[_choice(METRICS)] = NonEmpty
    seeds: list[Count] = NonEmpty
    max_iters: Annotated[Optional[Annotated[int, Field(ge=1)]], _message("expected null or an integer >= 1")] = None
    cfg_options: CfgOptions = None
    counted_la: Flag = True
    decomposition: Flag = True
    seconds_per_iteration: Annotated[Optional[Annotated[float, Field(gt=0, allow_inf_nan=False)]],
                                     _message("expected null or a number > 0 (seconds)")] = None
    auto_scale: Optional[AutoScaleFile] = None
    paper: Optional[dict[str, Any]] = None
    tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False),
                         _message("expected a number >= 0 (metric points)")] = 1.0
    variants: list[VariantFile] = NonEmpty

    @field_validator("dataset", mode="plain")
    @classmethod
    def _known_dataset(cls, value: Any) -> Union[str, OwnDatasetFile]:
        from npe import datasets

        if isinstance(value, Mapping):   # an own dataset: its keys reported as dataset.<key>
            try:
                own = OwnDatasetFile.model_validate(dict(value))
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                raise PydanticCustomError("recipe", "{key}: {message}", {
                    "key": _key(first["loc"]), "message": _explain(first, OwnDatasetFile)}) from None
            if own.holdout_split is not None and own.holdout_fraction is not None:
                raise PydanticCustomError("recipe", "give holdout_split or holdout_fraction, not both", {})
            return own
        known = sorted(datasets.names())
        if not isinstance(value, str) or value not in known:
            raise PydanticCustomError("recipe", "unknown dataset {value} (known: {known}; or a mapping "
                                      "with config and data_root for a dataset of your own)",
                                      {"value": show(value), "known": ", ".join(known)})
        return value


_MODELS = {"load_from": LoadFromFile, "auto_scale": AutoScaleFile, "variants": VariantFile,
           "holdout_split": HoldoutSplitFile}


def _key(loc: tuple) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _explain(error: dict, top: type[BaseModel] | None = None) -> str:
    kind, value, loc = error["type"], error.get("input"), error["loc"]
    if kind == "extra_forbidden":
        top = top or RecipeFile
        model = _MODELS.get(loc[0], top) if len(loc) > 1 else top
        return f"unknown key (allowed: {', '.join(model.model_fields)})"
    if kind == "missing":
        return "missing key"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {show(value)}"
    if kind == "too_short":
        return "expected a non-empty list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {show(value)}"
    return str(error["msg"]).removeprefix("Value error, ")


def parse(data: Any, where: str) -> RecipeFile:
    """``data`` (parsed YAML) as a :class:`RecipeFile`; :class:`RecipeError` with the first problem as
    ``<where>: <key>: <message>``."""
    if not isinstance(data, Mapping):
        raise RecipeError(f"{where}: expected a mapping of recipe keys at the top level, got {show(data)}")
    try:
        return RecipeFile.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise fail(where, _key(first["loc"]), _explain(first)) from None


def fail(where: str, key: str, message: str) -> RecipeError:
    """The error line of a broken rule: ``<file>: <key>: <message>`` on one line."""
    return RecipeError(" ".join(f"{where}: {key}: {message}".split()))


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
