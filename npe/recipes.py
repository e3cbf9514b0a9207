"""Recipes: one YAML file per experiment group, loaded into frozen dataclasses and validated.

The shape of a file (keys, types, allowed values) is the pydantic schema of :mod:`npe.recipe_schema`;
the rules that relate several keys are checked here. A recipe that breaks one raises a
:class:`~npe.errors.RecipeError` whose single line names the file and the key, e.g.
``recipes/foo.yaml: variants[2].num_pem: expected an integer >= 0, got 'two'``.

Keys (top level): ``name`` (= file stem), ``title``, ``paper_table``, ``dataset`` (a built-in name, or
a mapping ``config`` / ``data_root`` / ``holdout_split`` | ``holdout_fraction``: :mod:`npe.own_data`), ``base_config``,
``load_from``, ``protocol``, ``metrics``, ``seeds``, ``max_iters``, ``cfg_options``, ``counted_la``,
``decomposition`` (default true: the rows ``npe_main_only`` / ``npe_counted_la``, see
:meth:`Recipe.derived_rows`), ``seconds_per_iteration`` (measured training cost, for ``--dry-run``),
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
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import yaml

import math

from npe import config_names

from npe.constants import AUTO, COUNTED_LA, INF, MAIN_ONLY, NPE_COUNTED
from npe.errors import RecipeError, UserError
from npe.options import NPEOptions, OptionError
from npe.own_data import OwnData, own_data_from_recipe
from npe.paths import PACKAGE_DIR, repo_root
from npe.recipe_schema import (AutoScaleFile, LoadFromFile, OwnDatasetFile, RecipeFile, VariantFile, fail,
                               is_number, parse, show)

ScaleFactor = Union[float, str]  # a positive float, or the string 'auto'

DEFAULT_TOLERANCE = 1.0


#: A recipe's initial checkpoint and its ``auto_scale`` block: the schema's frozen models themselves.
LoadFrom = LoadFromFile
AutoScale = AutoScaleFile


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
    ``resolve=False`` and it did not resolve); ``own_data``: the dataset of a ``dataset:`` mapping
    (None for a built-in one; ``dataset`` is then its config's stem)."""

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
    decomposition: bool
    seconds_per_iteration: float | None
    auto_scale: AutoScale | None
    paper: dict
    paper_source: str | None
    tolerance: float
    variants: list[Variant]
    path: Path
    sha256: str
    own_data: OwnData | None = None

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
        raise RecipeError(f"{display_path(self.path)}: variants: no variant named {name!r}")

    def source_variant(self, name: str) -> Variant | None:
        """The trained variant whose model a row uses: the baseline for ``counted_la``, the NPE
        variant for a decomposition row, else the variant itself."""
        if name == COUNTED_LA:
            return self.baseline
        derived = self.derived_rows()
        return derived[name][0] if name in derived else self.variant(name)

    def merged_cfg_options(self, variant_name: str) -> dict:
        """The recipe's ``cfg_options`` updated by the variant's (what the variant trains with)."""
        source = self.source_variant(variant_name)
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
        """Scale factors evaluated for a variant, the ``counted_la`` pseudo-variant or a
        decomposition row (``npe_main_only``: s = inf; ``npe_counted_la``: the NPE variant's s)."""
        if variant_name == COUNTED_LA:
            return self.counted_la_scales()
        derived = self.derived_rows()
        if variant_name in derived:
            source, kind = derived[variant_name]
            return (math.inf,) if kind == MAIN_ONLY else source.scale_factors
        v = self.variant(variant_name)
        return (1.0,) if v.is_baseline else v.scale_factors

    def derived_rows(self) -> dict[str, tuple[Variant, str]]:
        """Decomposition rows (``decomposition: true``, the default): for every NPE variant, its
        model unadjusted (``MAIN_ONLY``) and adjusted by counted priors (``NPE_COUNTED``); no extra
        training. ``{row name: (NPE variant, kind)}`` in table order."""
        if not self.decomposition:
            return {}
        npe_variants = [v for v in self.variants if not v.is_baseline]
        rows: dict[str, tuple[Variant, str]] = {}
        for v in npe_variants:
            prefix = "npe" if len(npe_variants) == 1 else v.name
            rows[f"{prefix}_{MAIN_ONLY}"] = (v, MAIN_ONLY)
            rows[f"{prefix}_{NPE_COUNTED}"] = (v, NPE_COUNTED)
        return rows

    def derived_of(self, variant_name: str) -> dict[str, str]:
        """``{row name: kind}`` of the decomposition rows of one NPE variant."""
        return {name: kind for name, (v, kind) in self.derived_rows().items() if v.name == variant_name}

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
                for name in self.derived_of(v.name):
                    rows.extend((name, s) for s in self.scales_of(name))
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
    """How s is written in file names and tables: ``1``, ``1.5``, ``2``, ``auto``, ``inf``."""
    if s == AUTO:
        return AUTO
    if s == INF:
        return INF
    value = float(s)
    return str(int(value)) if value.is_integer() else repr(value)


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
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path).strip():
        raise RecipeError(f"recipe: expected a recipe name or a .yaml path, got {name_or_path!r}")
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    looks_like_path = candidate.suffix in (".yaml", ".yml") or os.sep in text or "/" in text
    if looks_like_path and candidate.is_file():
        return candidate
    for d in [] if looks_like_path else recipe_dirs():
        if (d / f"{text}.yaml").is_file():
            return d / f"{text}.yaml"
    if candidate.is_dir():
        inside = sorted(candidate.glob("*.yaml"))[:1]
        raise RecipeError(f"{text} is a folder, not a recipe; give a recipe name (npe-repro --list) or a "
                          f"recipe file{f' such as {inside[0]}' if inside else ' (<name>.yaml)'}")
    if looks_like_path:
        raise RecipeError(f"{text}: recipe file not found")
    known = ", ".join(list_recipes()) or "none"
    raise RecipeError(f"unknown recipe {text!r} (known: {known}); pass a name or a path to a .yaml file")


def resolve_base_config(value: str, recipe_path: Path) -> Path:
    """File behind a ``base_config`` value (``mmseg::``, ``npe::`` or a path relative to the recipe).

    Raises UserError (without the recipe file prefix; callers add it) when it does not exist.
    """
    _, path = config_names.resolve(value, relative_to=Path(recipe_path).parent)
    if not path.is_file():
        raise RecipeError(f"{value!r} not found (looked for {path})")
    return path


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
        raise RecipeError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(" ".join(f"{where}: invalid YAML{at}: {problem}".split())) from None
    return validate_recipe(data, path, sha256=hashlib.sha256(raw).hexdigest(), resolve=resolve)


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


# --------------------------------------------------------------------------------------------------
# rules between keys (the shapes are checked by npe.recipe_schema)


def _train_key(recipe_part: Mapping, options: NPEOptions, cfg_options: Mapping) -> str:
    # Everything that changes what is trained, and nothing that only changes evaluation (s).
    # The recipe-level fields make keys safe to use across recipes (e.g. as work-dir names).
    payload = {**recipe_part, **options.training_dict(), "cfg_options": dict(cfg_options)}
    if not options.num_pem:  # pem_type means nothing without PEMs; keep baselines differing in it together
        payload["pem_type"] = None
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return f"pem{options.num_pem}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def _variant(where: str, i: int, v: VariantFile, f: RecipeFile, recipe_part: Mapping) -> Variant:
    p = f"variants[{i}]"
    if v.name == COUNTED_LA:
        raise fail(where, f"{p}.name", f"{COUNTED_LA!r} is reserved for the counted-prior adjustment")
    try:
        options = NPEOptions(num_pem=v.num_pem, pem_type=v.pem_type, freeze_backbone=v.freeze_backbone,
                             freeze_decode=v.freeze_decode, protocol=v.protocol or f.protocol)
    except OptionError as exc:  # the rule between options (each one's shape is the schema's)
        raise fail(where, f"{p}.{exc.option}", str(exc)) from None
    scales = tuple(AUTO if s == AUTO else float(s) for s in v.scale_factors)
    for n, s in enumerate(scales):
        if s in scales[:n]:
            raise fail(where, f"{p}.scale_factors[{n}]", f"scale factor {scale_label(s)} listed twice")
    if options.num_pem == 0 and scales != (1.0,):
        raise fail(where, f"{p}.scale_factors", "s has no effect without PEMs: a baseline is evaluated at 1 "
                                                "only (remove scale_factors)")
    if AUTO in scales and f.auto_scale is None:
        raise fail(where, f"{p}.scale_factors", "'auto' needs a top-level auto_scale block (metric, candidates)")
    cfg = dict(v.cfg_options or {})
    key = _train_key(recipe_part, options, {**(f.cfg_options or {}), **cfg})
    return Variant(name=v.name, num_pem=options.num_pem, pem_type=options.pem_type,
                   freeze_backbone=options.freeze_backbone, freeze_decode=options.freeze_decode,
                   protocol=options.protocol, scale_factors=scales, cfg_options=cfg, train_key=key)


def _paper(where: str, value: Any, metrics: Sequence[str], variants: Sequence[Variant],
           la_scales: Sequence[ScaleFactor]) -> tuple[dict, str | None]:
    if value is None:
        return {}, None
    if not isinstance(value, Mapping):
        raise fail(where, "paper", f"expected a mapping of row -> metric -> number, got {show(value)}")
    scales = {v.name: ((1.0,) if v.is_baseline else v.scale_factors) for v in variants}
    if la_scales:
        scales[COUNTED_LA] = tuple(la_scales)
    table: dict[str, dict[str, float | None]] = {}
    source = None
    for row, entry in value.items():
        if row == "source":
            if entry is not None and (not isinstance(entry, str) or not entry.strip()):
                raise fail(where, "paper.source", f"expected a non-empty string or null, got {show(entry)}")
            source = entry
            continue
        if not isinstance(row, str):
            raise fail(where, "paper", f"row keys are variant names or 'variant@s', got {show(row)}")
        vname, _, s_text = row.partition("@")
        if vname not in scales:
            raise fail(where, f"paper.{row}", f"no variant named {vname!r} (rows: variant or variant@s)")
        labels = [scale_label(s) for s in scales[vname]]
        if s_text:
            if s_text not in labels:
                raise fail(where, f"paper.{row}", f"{vname} is not evaluated at s={s_text} (it is at {', '.join(labels)})")
        elif len(labels) > 1:
            raise fail(where, f"paper.{row}", f"{vname} is evaluated at several s ({', '.join(labels)}): "
                                         f"write {vname}@<s>")
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise fail(where, f"paper.{row}", f"expected a mapping of metric -> number or null, got {show(entry)}")
        numbers: dict[str, float | None] = {}
        for metric, number in entry.items():
            if metric not in metrics:
                raise fail(where, f"paper.{row}.{metric}", f"not one of the recipe's metrics ({', '.join(metrics)})")
            if number is not None and not is_number(number):
                raise fail(where, f"paper.{row}.{metric}", f"expected a number or null, got {show(number)}")
            numbers[metric] = None if number is None else float(number)
        key = f"{vname}@{s_text}" if s_text else vname
        table[key] = numbers
    return table, source


def validate_recipe(data: Any, path: str | os.PathLike, *, sha256: str = "", resolve: bool = True) -> Recipe:
    """Check parsed YAML ``data`` of the recipe file ``path`` against the schema; return the Recipe.

    The first broken rule raises :class:`~npe.errors.RecipeError` naming the file and key.
    """
    path = Path(path)
    where = display_path(path)
    f = parse(data, where)
    if f.name != path.stem:
        raise fail(where, "name", f"must equal the file name stem {path.stem!r}, got {f.name!r}")
    if f.name == "tables":
        raise fail(where, "name", "'tables' is reserved (results/tables holds the generated tables); rename the file")
    try:
        base_path: Path | None = resolve_base_config(f.base_config, path)
    except UserError as exc:
        if resolve:
            raise fail(where, "base_config", str(exc)) from None
        base_path = None
    for key, values in (("metrics", f.metrics), ("seeds", f.seeds)):
        if len(set(values)) != len(values):
            raise fail(where, key, f"lists a {key[:-1]} twice")
    own = own_data_from_recipe(f.dataset, path) if isinstance(f.dataset, OwnDatasetFile) else None
    if own is not None and resolve and not own.config_path.is_file():
        raise fail(where, "dataset.config", f"{own.config!r} not found (looked for {own.config_path})")
    dataset = own.name if own is not None else f.dataset
    auto_scale = None
    if f.auto_scale is not None:
        candidates = f.auto_scale.candidates
        if len(set(candidates)) != len(candidates):
            raise fail(where, "auto_scale.candidates", "contains a value twice")
        from npe import datasets

        no_holdout = (not own.has_holdout) if own is not None else datasets.get(f.dataset).holdout_split is None
        if no_holdout:
            fix = "add holdout_split or holdout_fraction to dataset" if own is not None else "remove auto_scale"
            raise fail(where, "auto_scale", f"dataset {dataset!r} has no held-out training split to choose s "
                                            f"on (s must never be chosen on the validation set); {fix}")
        auto_scale = f.auto_scale
    load_from = f.load_from
    recipe_part = {"dataset": f.dataset.model_dump() if own is not None else f.dataset,
                   "base_config": f.base_config,
                   "load_from": load_from.url if load_from else None, "max_iters": f.max_iters}
    variants: list[Variant] = []
    for i, raw in enumerate(f.variants):
        v = _variant(where, i, raw, f, recipe_part)
        if any(other.name == v.name for other in variants):
            raise fail(where, f"variants[{i}].name", f"duplicate variant name {v.name!r}")
        variants.append(v)
    baselines = [v.name for v in variants if v.is_baseline]
    if f.counted_la and len(baselines) != 1:
        found = ", ".join(baselines) if baselines else "none"
        raise fail(where, "variants", f"counted_la needs exactly one baseline (num_pem: 0), found {found}; "
                                      "add or remove one, or set counted_la: false")
    recipe = Recipe(
        name=f.name, title=f.title, paper_table=f.paper_table, dataset=dataset, base_config=f.base_config,
        base_config_path=base_path, load_from=load_from, protocol=f.protocol, metrics=tuple(f.metrics),
        seeds=tuple(f.seeds), max_iters=f.max_iters, cfg_options=dict(f.cfg_options or {}),
        counted_la=f.counted_la, decomposition=f.decomposition,
        seconds_per_iteration=f.seconds_per_iteration, auto_scale=auto_scale, paper={}, paper_source=None,
        tolerance=float(f.tolerance), variants=variants, path=path, sha256=sha256, own_data=own,
    )
    # The paper block is checked against the finished variants (their s lists), hence this order.
    paper, source = _paper(where, f.paper, recipe.metrics, recipe.variants, recipe.counted_la_scales())
    return dataclasses.replace(recipe, paper=paper, paper_source=source)

