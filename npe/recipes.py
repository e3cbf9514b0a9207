"""Recipe schema: one YAML file per experiment group, loaded into frozen dataclasses and validated.

Every rule about what a recipe may say lives in this module. A recipe that breaks one raises a
:class:`~npe.errors.UserError` whose single line names the file and the key, e.g.
``recipes/foo.yaml: variants[2].num_pem: expected an integer >= 0, got 'two'``.

Keys (top level): ``name`` (= file stem), ``title``, ``paper_table``, ``dataset``, ``base_config``,
``load_from``, ``protocol``, ``metrics``, ``seeds``, ``max_iters``, ``cfg_options``, ``counted_la``,
``auto_scale``, ``paper``, ``tolerance``, ``variants``. Variant keys: ``name``, ``num_pem``,
``pem_type``, ``freeze_backbone``, ``freeze_decode``, ``protocol``, ``scale_factors``, ``cfg_options``.

Derived rows: the baseline (``num_pem: 0``) is evaluated at s = 1 only (s does nothing without PEMs);
the pseudo-variant ``counted_la`` (classic logit adjustment of the baseline with counted priors,
no training) is evaluated at every scale factor any NPE variant lists, ``auto`` included: when NPE may
choose s on held-out training data, the comparator gets the same privilege, otherwise the comparison
would favour NPE by construction.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import yaml

from npe.errors import UserError, cli_entry
from npe.paths import PACKAGE_DIR, repo_root

ScaleFactor = Union[float, str]  # a positive float, or the string 'auto'

PROTOCOLS = ("upstream", "fixed")
METRICS = ("mIoU", "mDice", "mAcc", "aAcc")
PEM_TYPES = ("auto", "FCNHead")
AUTO = "auto"
COUNTED_LA = "counted_la"
DEFAULT_TOLERANCE = 1.0
# Used only while npe.datasets is not importable (it is written in parallel); the registry wins.
_FALLBACK_DATASETS = {"stare": None, "ade20k": None, "smoke": "holdout", "longtail_synth": "holdout"}

_TOP_KEYS = (
    "name", "title", "paper_table", "dataset", "base_config", "load_from", "protocol", "metrics",
    "seeds", "max_iters", "cfg_options", "counted_la", "auto_scale", "paper", "tolerance", "variants",
)
_REQUIRED_TOP = ("name", "title", "dataset", "base_config", "protocol", "metrics", "seeds", "variants")
_VARIANT_KEYS = (
    "name", "num_pem", "pem_type", "freeze_backbone", "freeze_decode", "protocol", "scale_factors",
    "cfg_options",
)
_VARIANT_NAME = re.compile(r"^[a-z0-9_]+$")
_CFG_KEY = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# MMSeg model-zoo file names end in -<first 8 hex digits of the sha256>.pth
_ZOO_PREFIX = re.compile(r"-([0-9a-f]{8})\.pth$")


@dataclass(frozen=True)
class LoadFrom:
    """Initial checkpoint: URL (or local path) and its sha256 (full, or None)."""

    url: str
    sha256: str | None = None

    @property
    def sha256_prefix(self) -> str | None:
        """The checksum (or its leading digits) the download must match: the full sha256 if given,
        else the 8-digit prefix an MMSeg zoo file name carries, else None."""
        if self.sha256:
            return self.sha256
        match = _ZOO_PREFIX.search(self.url)
        return match.group(1) if match else None


@dataclass(frozen=True)
class AutoScale:
    """How ``s = 'auto'`` is chosen: best ``metric`` over ``candidates`` on the holdout split."""

    metric: str
    candidates: tuple[float, ...]


@dataclass(frozen=True)
class Variant:
    """A named set of NPE options. ``num_pem == 0`` is the baseline. ``protocol`` is effective."""

    name: str
    num_pem: int
    pem_type: str
    freeze_backbone: bool
    freeze_decode: bool
    protocol: str
    scale_factors: tuple[ScaleFactor, ...]
    cfg_options: dict = field(default_factory=dict)
    train_key: str = ""

    @property
    def is_baseline(self) -> bool:
        return self.num_pem == 0


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. ``paper`` maps a row key (``variant`` or ``variant@s``) to
    ``{metric: number | None}``; ``base_config_path`` is the resolved file (None only when loaded with
    ``resolve=False`` and it did not resolve)."""

    name: str
    title: str
    paper_table: str | None
    dataset: str
    base_config: str
    base_config_path: Path | None
    load_from: LoadFrom | None
    protocol: str
    metrics: tuple[str, ...]
    seeds: tuple[int, ...]
    max_iters: int | None
    cfg_options: dict
    counted_la: bool
    auto_scale: AutoScale | None
    paper: dict
    paper_source: str | None
    tolerance: float
    variants: list[Variant]
    path: Path
    sha256: str

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    @property
    def baseline(self) -> Variant | None:
        """The variant with ``num_pem == 0`` (at most one when ``counted_la`` is on)."""
        return next((v for v in self.variants if v.is_baseline), None)

    def variant(self, name: str) -> Variant:
        """The variant called ``name``; UserError if there is none."""
        for v in self.variants:
            if v.name == name:
                return v
        raise UserError(f"{display_path(self.path)}: variants: no variant named {name!r}")

    def merged_cfg_options(self, variant_name: str) -> dict:
        """The recipe's ``cfg_options`` updated by the variant's (what the variant trains with)."""
        source = self.baseline if variant_name == COUNTED_LA else self.variant(variant_name)
        return {**self.cfg_options, **(source.cfg_options if source is not None else {})}

    def counted_la_scales(self) -> tuple[ScaleFactor, ...]:
        """Scale factors the counted-prior adjustment is evaluated at (see module docstring)."""
        if not self.counted_la:
            return ()
        found: list[ScaleFactor] = []
        for v in self.variants:
            if not v.is_baseline:
                found.extend(s for s in v.scale_factors if s not in found)
        if not found:
            return (1.0,)
        numbers = sorted(s for s in found if s != AUTO)
        return tuple(numbers) + ((AUTO,) if AUTO in found else ())

    def scales_of(self, variant_name: str) -> tuple[ScaleFactor, ...]:
        """Scale factors evaluated for a variant or the ``counted_la`` pseudo-variant."""
        if variant_name == COUNTED_LA:
            return self.counted_la_scales()
        v = self.variant(variant_name)
        return (1.0,) if v.is_baseline else v.scale_factors

    def row_keys(self) -> list[tuple[str, ScaleFactor]]:
        """(variant, s) rows in table order: baseline, counted_la, then the others as listed."""
        rows: list[tuple[str, ScaleFactor]] = []
        base = self.baseline
        if base is not None:
            rows.append((base.name, 1.0))
        rows.extend((COUNTED_LA, s) for s in self.counted_la_scales())
        for v in self.variants:
            if not v.is_baseline:
                rows.extend((v.name, s) for s in v.scale_factors)
        return rows

    def expected_results(self) -> list[tuple[str, int, ScaleFactor]]:
        """Every result file a complete run writes, as (variant, seed, s), in table order."""
        return [(name, seed, s) for name, s in self.row_keys() for seed in self.seeds]

    def train_groups(self) -> dict[str, list[Variant]]:
        """Variants grouped by ``train_key`` (one training per group and seed), in recipe order."""
        groups: dict[str, list[Variant]] = {}
        for v in self.variants:
            groups.setdefault(v.train_key, []).append(v)
        return groups

    def paper_value(self, variant: str, s: ScaleFactor, metric: str) -> float | None:
        """The paper's number for a row, if entered (``variant@s`` first, then plain ``variant``)."""
        entry = self.paper.get(f"{variant}@{scale_label(s)}")
        if entry is None:
            entry = self.paper.get(variant)
        return None if entry is None else entry.get(metric)


def scale_label(s: ScaleFactor) -> str:
    """How s is written in file names and tables: ``1``, ``1.5``, ``2``, ``auto``."""
    if s == AUTO:
        return AUTO
    value = float(s)
    return str(int(value)) if value.is_integer() else repr(value)


def result_stem(variant: str, seed: int, s: ScaleFactor) -> str:
    """File stem of a result file: ``<variant>__seed<seed>__s<s>`` (docs/internals.md)."""
    return f"{variant}__seed{seed}__s{scale_label(s)}"


def display_path(path: Path) -> str:
    """A path as error messages show it: relative to the repo when inside it."""
    path = Path(path)
    try:
        return os.path.relpath(path.resolve(), repo_root().resolve()) if _inside_repo(path) else str(path)
    except ValueError:  # different drive on Windows
        return str(path)


def _inside_repo(path: Path) -> bool:
    try:
        path.resolve().relative_to(repo_root().resolve())
        return True
    except ValueError:
        return False


def recipe_dirs() -> list[Path]:
    """Folders searched for ``<name>.yaml``: the checkout's ``recipes/``, then a copy shipped inside
    the package (``npe/recipes_builtin``) if an installation provides one."""
    return [d for d in (repo_root() / "recipes", PACKAGE_DIR / "recipes_builtin") if d.is_dir()]


def list_recipes() -> list[str]:
    """Names of all recipes found in :func:`recipe_dirs`, sorted."""
    return sorted({p.stem for d in recipe_dirs() for p in d.glob("*.yaml")})


def find_recipe(name_or_path: str | os.PathLike) -> Path:
    """Path of a recipe given by file path or bare name; UserError if none."""
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.suffix in (".yaml", ".yml") or os.sep in text or "/" in text:
        if candidate.is_file():
            return candidate
        raise UserError(f"{text}: recipe file not found")
    for d in recipe_dirs():
        path = d / f"{text}.yaml"
        if path.is_file():
            return path
    known = ", ".join(list_recipes()) or "none"
    raise UserError(f"unknown recipe {text!r} (known: {known}); pass a name or a path to a .yaml file")


def load_recipe(name_or_path: str | os.PathLike, *, resolve: bool = True) -> Recipe:
    """Load and validate a recipe by name (``recipes/<name>.yaml``) or path.

    ``resolve=False`` skips only the existence check of the base config (so tables can be rebuilt on
    a machine without MMSeg); every other rule is still enforced.
    """
    path = find_recipe(name_or_path)
    raw = path.read_bytes()
    where = display_path(path)
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(_one_line(f"{where}: invalid YAML{at}: {problem}")) from None
    return validate_recipe(data, path, sha256=hashlib.sha256(raw).hexdigest(), resolve=resolve)


# --------------------------------------------------------------------------------------------------
# validation


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` semantics, except that a key given twice in one mapping is an error
    (PyYAML would silently keep the last one, e.g. a second ``variants:`` hiding the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice in one mapping", key_node.start_mark)
            if isinstance(key, (str, int, float, bool)):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Where:
    """Builds the ``file: key: message`` line of every validation error."""

    def __init__(self, path: Path):
        self.file = display_path(path)

    def fail(self, key: str, message: str) -> UserError:
        return UserError(_one_line(f"{self.file}: {key}: {message}"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _check_keys(w: _Where, data: Mapping, allowed: Sequence[str], prefix: str) -> None:
    for key in data:
        if key not in allowed:
            where = f"{prefix}{key}" if isinstance(key, str) else f"{prefix}{_show(key)}"
            raise w.fail(where, f"unknown key (allowed: {', '.join(allowed)})")


def _str(w: _Where, key: str, value: Any, *, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value.strip():
        kind = "a non-empty string or null" if nullable else "a non-empty string"
        raise w.fail(key, f"expected {kind}, got {_show(value)}")
    return value


def _bool(w: _Where, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise w.fail(key, f"expected true or false, got {_show(value)}")
    return value


def _choice(w: _Where, key: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise w.fail(key, f"expected one of {', '.join(choices)}, got {_show(value)}")
    return value


def _positive(w: _Where, key: str, value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise w.fail(key, f"expected a number > 0, got {_show(value)}")
    return float(value)


def _list(w: _Where, key: str, value: Any, *, non_empty: bool = True) -> list:
    if not isinstance(value, list):
        raise w.fail(key, f"expected a list, got {_show(value)}")
    if non_empty and not value:
        raise w.fail(key, "expected a non-empty list")
    return value


def _cfg_options(w: _Where, key: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise w.fail(key, f"expected a mapping of dotted config keys to values, got {_show(value)}")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not _CFG_KEY.match(k):
            raise w.fail(f"{key}.{k}" if isinstance(k, str) else key,
                         f"expected a dotted config key like 'model.decode_head.dropout_ratio', got {_show(k)}")
        out[k] = v
    return out


def _dataset_info(w: _Where, value: Any) -> tuple[str, str | None]:
    """(name, holdout split) from the dataset registry, or the fixed list while it is absent."""
    try:
        import npe.datasets as registry  # noqa: PLC0415 - written in parallel, may not exist yet
    except ImportError:
        registry = None
    known = sorted(registry.names()) if registry is not None else sorted(_FALLBACK_DATASETS)
    if not isinstance(value, str) or value not in known:
        raise w.fail("dataset", f"unknown dataset {_show(value)} (known: {', '.join(known)})")
    if registry is None:
        return value, _FALLBACK_DATASETS[value]
    return value, registry.get(value).holdout_split


def _mmseg_configs_dir() -> Path | None:
    # find_spec locates the package without importing it (importing mmseg pulls in torch and mmcv).
    spec = importlib.util.find_spec("mmseg")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / ".mim" / "configs"


def resolve_base_config(value: str, recipe_path: Path) -> Path:
    """File behind a ``base_config`` value (``mmseg::``, ``npe::`` or a path relative to the recipe).

    Raises UserError (without the recipe file prefix; callers add it) when it does not exist.
    """
    if value.startswith("mmseg::"):
        configs = _mmseg_configs_dir()
        if configs is None:
            raise UserError(f"{value!r} cannot be resolved: mmsegmentation is not installed "
                            "(run scripts/setup.sh)")
        path = configs / value[len("mmseg::"):]
    elif value.startswith("npe::"):
        path = PACKAGE_DIR / "configs" / value[len("npe::"):]
    elif "::" in value:
        raise UserError(f"{value!r}: unknown scope (use mmseg::, npe:: or a path relative to the recipe)")
    else:
        path = (Path(recipe_path).parent / value).resolve()
    if not path.is_file():
        raise UserError(f"{value!r} not found (looked for {path})")
    return path


def _load_from(w: _Where, value: Any) -> LoadFrom | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise w.fail("load_from", f"expected null or a mapping with url and sha256, got {_show(value)}")
    _check_keys(w, value, ("url", "sha256"), "load_from.")
    if "url" not in value:
        raise w.fail("load_from.url", "missing key")
    url = _str(w, "load_from.url", value["url"])
    sha = value.get("sha256")
    if sha is not None:
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise w.fail("load_from.sha256", f"expected null or 64 lowercase hex digits, got {_show(sha)}")
        zoo = _ZOO_PREFIX.search(url)
        if zoo and not sha.startswith(zoo.group(1)):
            raise w.fail("load_from.sha256",
                         f"does not start with {zoo.group(1)}, the prefix in the checkpoint's file name")
    return LoadFrom(url=url, sha256=sha)


def _auto_scale(w: _Where, value: Any, holdout: str | None, dataset: str) -> AutoScale | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise w.fail("auto_scale", f"expected null or a mapping with metric and candidates, got {_show(value)}")
    _check_keys(w, value, ("metric", "candidates"), "auto_scale.")
    for key in ("metric", "candidates"):
        if key not in value:
            raise w.fail(f"auto_scale.{key}", "missing key")
    metric = _choice(w, "auto_scale.metric", value["metric"], METRICS)
    cands = _list(w, "auto_scale.candidates", value["candidates"])
    numbers = tuple(_positive(w, f"auto_scale.candidates[{i}]", c) for i, c in enumerate(cands))
    if len(set(numbers)) != len(numbers):
        raise w.fail("auto_scale.candidates", "contains a value twice")
    if holdout is None:
        raise w.fail("auto_scale", f"dataset {dataset!r} has no held-out training split to choose s on "
                                   "(s must never be chosen on the validation set); remove auto_scale")
    return AutoScale(metric=metric, candidates=numbers)


def _scale_factors(w: _Where, key: str, value: Any) -> tuple[ScaleFactor, ...]:
    items = _list(w, key, value)
    out: list[ScaleFactor] = []
    for i, s in enumerate(items):
        if s == AUTO:
            item: ScaleFactor = AUTO
        elif _is_number(s) and s > 0:
            item = float(s)
        else:
            raise w.fail(f"{key}[{i}]", f"expected a number > 0 or 'auto', got {_show(s)}")
        if item in out:
            raise w.fail(f"{key}[{i}]", f"scale factor {scale_label(item)} listed twice")
        out.append(item)
    return tuple(out)


def _train_key(recipe_part: Mapping, num_pem: int, pem_type: str, freeze_backbone: bool,
               freeze_decode: bool, protocol: str, cfg_options: Mapping) -> str:
    # Everything that changes what is trained, and nothing that only changes evaluation (s).
    # The recipe-level fields make keys safe to use across recipes (e.g. as work-dir names).
    payload = {
        **recipe_part,
        "num_pem": num_pem,
        # pem_type means nothing without PEMs; keep baselines that only differ in it together
        "pem_type": pem_type if num_pem else None,
        "freeze_backbone": freeze_backbone,
        "freeze_decode": freeze_decode,
        "protocol": protocol,
        "cfg_options": dict(cfg_options),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return f"pem{num_pem}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def _variant(w: _Where, i: int, value: Any, recipe: Mapping, recipe_part: Mapping) -> Variant:
    p = f"variants[{i}]"
    if not isinstance(value, Mapping):
        raise w.fail(p, f"expected a mapping of variant options, got {_show(value)}")
    _check_keys(w, value, _VARIANT_KEYS, f"{p}.")
    for key in ("name", "num_pem"):
        if key not in value:
            raise w.fail(f"{p}.{key}", "missing key")
    name = value["name"]
    if not isinstance(name, str) or not _VARIANT_NAME.match(name):
        raise w.fail(f"{p}.name", f"expected lowercase letters, digits and _, got {_show(name)}")
    if name == COUNTED_LA:
        raise w.fail(f"{p}.name", f"{COUNTED_LA!r} is reserved for the counted-prior adjustment")
    num_pem = value["num_pem"]
    if not _is_int(num_pem) or num_pem < 0:
        raise w.fail(f"{p}.num_pem", f"expected an integer >= 0, got {_show(num_pem)}")
    pem_type = _choice(w, f"{p}.pem_type", value.get("pem_type", "auto"), PEM_TYPES)
    fb = _bool(w, f"{p}.freeze_backbone", value.get("freeze_backbone", False))
    fd = _bool(w, f"{p}.freeze_decode", value.get("freeze_decode", False))
    if num_pem == 0 and fb and fd:
        raise w.fail(f"{p}.num_pem", "0 with freeze_backbone and freeze_decode leaves nothing to train")
    protocol = recipe["protocol"]
    if "protocol" in value and value["protocol"] is not None:
        protocol = _choice(w, f"{p}.protocol", value["protocol"], PROTOCOLS)
    if "scale_factors" in value:
        scales = _scale_factors(w, f"{p}.scale_factors", value["scale_factors"])
    else:
        scales = (1.0,)
    if num_pem == 0 and scales != (1.0,):
        raise w.fail(f"{p}.scale_factors", "s has no effect without PEMs: a baseline is evaluated at 1 "
                                           "only (remove scale_factors)")
    if AUTO in scales and recipe["auto_scale"] is None:
        raise w.fail(f"{p}.scale_factors", "'auto' needs a top-level auto_scale block (metric, candidates)")
    cfg = _cfg_options(w, f"{p}.cfg_options", value.get("cfg_options"))
    merged = {**recipe["cfg_options"], **cfg}
    key = _train_key(recipe_part, num_pem, pem_type, fb, fd, protocol, merged)
    return Variant(name=name, num_pem=num_pem, pem_type=pem_type, freeze_backbone=fb, freeze_decode=fd,
                   protocol=protocol, scale_factors=scales, cfg_options=cfg, train_key=key)


def _paper(w: _Where, value: Any, metrics: Sequence[str], variants: Sequence[Variant],
           la_scales: Sequence[ScaleFactor]) -> tuple[dict, str | None]:
    if value is None:
        return {}, None
    if not isinstance(value, Mapping):
        raise w.fail("paper", f"expected a mapping of row -> metric -> number, got {_show(value)}")
    scales = {v.name: ((1.0,) if v.is_baseline else v.scale_factors) for v in variants}
    if la_scales:
        scales[COUNTED_LA] = tuple(la_scales)
    table: dict[str, dict[str, float | None]] = {}
    source = None
    for row, entry in value.items():
        if row == "source":
            source = _str(w, "paper.source", entry, nullable=True)
            continue
        if not isinstance(row, str):
            raise w.fail("paper", f"row keys are variant names or 'variant@s', got {_show(row)}")
        vname, _, s_text = row.partition("@")
        if vname not in scales:
            raise w.fail(f"paper.{row}", f"no variant named {vname!r} (rows: variant or variant@s)")
        labels = [scale_label(s) for s in scales[vname]]
        if s_text:
            if s_text not in labels:
                raise w.fail(f"paper.{row}", f"{vname} is not evaluated at s={s_text} (it is at {', '.join(labels)})")
        elif len(labels) > 1:
            raise w.fail(f"paper.{row}", f"{vname} is evaluated at several s ({', '.join(labels)}): "
                                         f"write {vname}@<s>")
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise w.fail(f"paper.{row}", f"expected a mapping of metric -> number or null, got {_show(entry)}")
        numbers: dict[str, float | None] = {}
        for metric, number in entry.items():
            if metric not in metrics:
                raise w.fail(f"paper.{row}.{metric}", f"not one of the recipe's metrics ({', '.join(metrics)})")
            if number is not None and not _is_number(number):
                raise w.fail(f"paper.{row}.{metric}", f"expected a number or null, got {_show(number)}")
            numbers[metric] = None if number is None else float(number)
        key = f"{vname}@{s_text}" if s_text else vname
        table[key] = numbers
    return table, source


def validate_recipe(data: Any, path: str | os.PathLike, *, sha256: str = "", resolve: bool = True) -> Recipe:
    """Check parsed YAML ``data`` of the recipe file ``path`` against the schema; return the Recipe.

    The first broken rule raises UserError naming the file and key.
    """
    path = Path(path)
    w = _Where(path)
    if not isinstance(data, Mapping):
        raise UserError(f"{w.file}: expected a mapping of recipe keys at the top level, got {_show(data)}")
    _check_keys(w, data, _TOP_KEYS, "")
    for key in _REQUIRED_TOP:
        if key not in data:
            raise w.fail(key, "missing key")

    name = _str(w, "name", data["name"])
    if name != path.stem:
        raise w.fail("name", f"must equal the file name stem {path.stem!r}, got {name!r}")
    if name == "tables":
        raise w.fail("name", "'tables' is reserved (results/tables holds the generated tables); rename the file")
    title = _str(w, "title", data["title"])
    paper_table = _str(w, "paper_table", data.get("paper_table"), nullable=True)
    dataset, holdout = _dataset_info(w, data["dataset"])

    base_config = _str(w, "base_config", data["base_config"])
    try:
        base_path: Path | None = resolve_base_config(base_config, path)
    except UserError as exc:
        if resolve:
            raise w.fail("base_config", str(exc)) from None
        base_path = None

    load_from = _load_from(w, data.get("load_from"))
    protocol = _choice(w, "protocol", data["protocol"], PROTOCOLS)

    metrics_raw = _list(w, "metrics", data["metrics"])
    metrics = tuple(_choice(w, f"metrics[{i}]", m, METRICS) for i, m in enumerate(metrics_raw))
    if len(set(metrics)) != len(metrics):
        raise w.fail("metrics", "lists a metric twice")

    seeds_raw = _list(w, "seeds", data["seeds"])
    for i, seed in enumerate(seeds_raw):
        if not _is_int(seed) or seed < 0:
            raise w.fail(f"seeds[{i}]", f"expected an integer >= 0, got {_show(seed)}")
    if len(set(seeds_raw)) != len(seeds_raw):
        raise w.fail("seeds", "lists a seed twice")
    seeds = tuple(seeds_raw)

    max_iters = data.get("max_iters")
    if max_iters is not None and (not _is_int(max_iters) or max_iters < 1):
        raise w.fail("max_iters", f"expected null or an integer >= 1, got {_show(max_iters)}")

    cfg_options = _cfg_options(w, "cfg_options", data.get("cfg_options"))
    counted_la = _bool(w, "counted_la", data.get("counted_la", True))
    auto_scale = _auto_scale(w, data.get("auto_scale"), holdout, dataset)

    tolerance = data.get("tolerance", DEFAULT_TOLERANCE)
    if not _is_number(tolerance) or tolerance < 0:
        raise w.fail("tolerance", f"expected a number >= 0 (metric points), got {_show(tolerance)}")

    recipe_ctx = {"protocol": protocol, "cfg_options": cfg_options, "auto_scale": auto_scale}
    recipe_part = {
        "dataset": dataset,
        "base_config": base_config,
        "load_from": load_from.url if load_from else None,
        "max_iters": max_iters,
    }
    variants_raw = _list(w, "variants", data["variants"])
    variants: list[Variant] = []
    for i, raw in enumerate(variants_raw):
        v = _variant(w, i, raw, recipe_ctx, recipe_part)
        if any(other.name == v.name for other in variants):
            raise w.fail(f"variants[{i}].name", f"duplicate variant name {v.name!r}")
        variants.append(v)
    baselines = [v.name for v in variants if v.is_baseline]
    if counted_la and len(baselines) != 1:
        found = ", ".join(baselines) if baselines else "none"
        raise w.fail("variants", f"counted_la needs exactly one baseline (num_pem: 0), found {found}; "
                                 "add or remove one, or set counted_la: false")

    recipe = Recipe(
        name=name, title=title, paper_table=paper_table, dataset=dataset, base_config=base_config,
        base_config_path=base_path, load_from=load_from, protocol=protocol, metrics=metrics, seeds=seeds,
        max_iters=max_iters, cfg_options=cfg_options, counted_la=counted_la, auto_scale=auto_scale,
        paper={}, paper_source=None, tolerance=float(tolerance), variants=variants, path=path,
        sha256=sha256,
    )
    # The paper block is checked against the finished variants (their s lists), hence this order.
    paper, source = _paper(w, data.get("paper"), metrics, recipe.variants, recipe.counted_la_scales())
    return dataclasses.replace(recipe, paper=paper, paper_source=source)


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m npe.recipes [NAME_OR_PATH ...]``: validate recipes (default: all), one line each."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m npe.recipes", description="Validate recipes.")
    parser.add_argument("recipes", nargs="*", help="names or .yaml paths (default: every recipe)")
    args = parser.parse_args(argv)
    for item in args.recipes or list_recipes():
        r = load_recipe(item)
        runs = len({(v.train_key, seed) for v in r.variants for seed in r.seeds})
        print(f"{display_path(r.path)}: ok ({len(r.variants)} variants, {runs} trainings, "
              f"{len(r.expected_results())} result files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
