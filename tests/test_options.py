"""The six NPE model options have one home (npe/options.py): their defaults and rules, and a scan of
the package that fails when a default or a validation rule of one of them gets a second literal home.

The scan (:func:`second_homes`) reads every module of ``npe/`` with ``ast`` and reports, outside
``npe/options.py``: a literal default of a parameter, dataclass/pydantic field, ``--flag`` or
``cfg.get(name, ...)`` named after an option; a raise whose message words a rule of an option
("must be", "expected", "unknown", "choose", "nothing to train"); an ``if`` that compares an option
with a number and raises; the choice lists ``PEM_TYPES`` / ``PROTOCOLS`` used outside the constants;
the "0 PEMs with both freezes" test. ``NPE_SCAN_ROOT=<checkout>`` points the scan at another checkout
(on main at 6383749, before npe/options.py existed, it reports 66 second homes in 10 files).
"""
from __future__ import annotations

import ast
import inspect
import math
import os
from pathlib import Path

import pytest

import npe
from npe.errors import ConfigError, UserError
from npe.options import (DEFAULTS, EVALUATED_SCALE, NAMES, NUM_PEM, RECIPE_SCALE, TRAINED_SCALE,
                         TRAINING_OPTIONS, NPEOptions, OptionError)

ROOT = Path(os.environ.get("NPE_SCAN_ROOT") or Path(__file__).resolve().parents[1])
#: Files allowed to hold the options' literals: their home, and the constants the choices come from.
HOMES = {"npe/options.py", "npe/constants.py"}
#: The result-file reader checks the *recorded* s of a result file (a contract of its own, which
#: also holds 'inf'); it moves to the result-file model (issue 17, item 3), not to the options.
RECORDED = {"npe/results.py"}
_RULE_WORDS = ("must be", "expected", "unknown", "choose", "nothing to train")
_FIELDS = set(NAMES) | {"scale_factors"}


def _words(name: str) -> tuple[str, ...]:
    return (name, name.replace("_", " "))


def _mentions(node: ast.AST, names=NAMES) -> bool:
    return any((isinstance(n, ast.Name) and n.id in names) or (isinstance(n, ast.Attribute) and n.attr in names)
               for n in ast.walk(node))


def _literal(node: ast.AST | None) -> bool:
    """A hand-written value: a constant other than None, or a list/tuple holding one."""
    if isinstance(node, ast.Constant):
        return node.value is not None
    if isinstance(node, (ast.List, ast.Tuple)):
        return any(_literal(e) for e in node.elts)
    if isinstance(node, ast.Call):  # pydantic Field(default=...)
        return any(k.arg == "default" and _literal(k.value) for k in node.keywords)
    return False


def _text(node: ast.AST) -> str:
    return " ".join(n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str))


def _findings(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    flags = {"--" + name.replace("_", "-"): name for name in NAMES}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.posonlyargs + node.args.args
            pairs = list(zip(args[len(args) - len(node.args.defaults):], node.args.defaults))
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None]
            found += [(d.lineno, f"default of {a.arg} in {node.name}()") for a, d in pairs
                      if a.arg in NAMES and _literal(d)]
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) \
                        and item.target.id in _FIELDS and _literal(item.value):
                    found.append((item.lineno, f"default of the field {node.name}.{item.target.id}"))
        elif isinstance(node, ast.Call):
            first = node.args[0] if node.args else None
            name = first.value if isinstance(first, ast.Constant) else None
            if isinstance(node.func, ast.Attribute) and node.func.attr == "get" and name in NAMES \
                    and len(node.args) > 1 and _literal(node.args[1]):
                found.append((node.lineno, f"fallback default of {name} in .get()"))
            if name in flags and any(k.arg == "default" and _literal(k.value) for k in node.keywords):
                found.append((node.lineno, f"default of the flag {name}"))
        elif isinstance(node, ast.Raise) and node.exc is not None:
            text = _text(node.exc).lower()
            if any(w in text for name in NAMES for w in _words(name)) and any(w in text for w in _RULE_WORDS):
                found.append((node.lineno, f"a rule worded in a raise: {' '.join(text.split())[:70]!r}"))
        elif isinstance(node, ast.If) and any(isinstance(n, ast.Raise) for n in ast.walk(node)):
            for cmp in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
                ordered = any(isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for op in cmp.ops)
                sides = [cmp.left, *cmp.comparators]
                if ordered and _mentions(cmp) and any(isinstance(s, ast.Constant) for s in sides):
                    found.append((node.lineno, "an option compared with a number, then a raise"))
        elif isinstance(node, ast.Name) and node.id in ("PEM_TYPES", "PROTOCOLS") \
                and isinstance(node.ctx, ast.Load):
            found.append((node.lineno, f"the choices {node.id} checked outside npe/options.py"))
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And) and all(
                any(_mentions(v, {name}) for v in node.values)
                for name in ("num_pem", "freeze_backbone", "freeze_decode")):
            found.append((node.lineno, "the nothing-to-train rule (0 PEMs, both parts frozen)"))
    return found


def second_homes(root: Path = ROOT) -> list[str]:
    """``path:line: what`` for every default or rule of the six options found outside their home."""
    out = []
    for path in sorted((root / "npe").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in HOMES | RECORDED or "/configs/" in rel:
            continue
        for line, what in sorted(set(_findings(ast.parse(path.read_text(), rel)))):
            out.append(f"{rel}:{line}: {what}")
    return out


def test_each_default_and_rule_of_the_options_lives_in_npe_options():
    homes = second_homes()
    assert not homes, "second homes of the NPE options (use npe.options):\n" + "\n".join(homes)


def test_the_scan_finds_each_kind_of_second_home(tmp_path):
    """The scan is not blind: each kind of restatement, planted in a scratch package, is reported."""
    (tmp_path / "npe").mkdir()
    (tmp_path / "npe" / "planted.py").write_text(
        "import argparse\nfrom npe.constants import PEM_TYPES\n\n"
        "def build(num_pem: int = 1, *, protocol='upstream'):\n"
        "    if num_pem < 0:\n        raise ValueError('bad')\n"
        "    if num_pem == 0 and freeze_backbone and freeze_decode:\n        pass\n"
        "    if pem_type not in PEM_TYPES:\n        pass\n"
        "    raise ValueError(f'scale factor must be > 0, got {s}')\n\n"
        "class Variant:\n    pem_type: str = 'auto'\n\n"
        "p = argparse.ArgumentParser()\np.add_argument('--scale-factor', type=float, default=1.0)\n"
        "x = head.get('scale_factor', 1.0)\n")
    found = "\n".join(second_homes(tmp_path))
    for what in ("default of num_pem", "default of protocol", "compared with a number", "nothing-to-train",
                 "choices PEM_TYPES", "worded in a raise", "field Variant.pem_type", "flag --scale-factor",
                 "fallback default of scale_factor"):
        assert what in found, (what, found)


def test_defaults_and_signatures_come_from_one_object():
    from npe.cli.train import build_parser
    from npe.models.wrapper import MultiHeadWrapper
    from npe.training import build_train_config

    assert (DEFAULTS.num_pem, DEFAULTS.pem_type, DEFAULTS.scale_factor, DEFAULTS.freeze_backbone,
            DEFAULTS.freeze_decode, DEFAULTS.protocol) == (1, "auto", 1.0, False, False, "upstream")
    for func in (npe.apply_npe, npe.train, build_train_config, MultiHeadWrapper.__init__):
        params = inspect.signature(func).parameters
        for name in NAMES:
            if name in params:
                assert params[name].default == getattr(DEFAULTS, name), (func, name)
    args = build_parser().parse_args(["cfg.py"])
    assert {name: getattr(args, name) for name in NAMES} == DEFAULTS.as_dict()
    assert "scale_factor" not in TRAINING_OPTIONS and set(TRAINING_OPTIONS) == set(NAMES) - {"scale_factor"}


def test_the_three_scale_factor_rules():
    assert TRAINED_SCALE.valid(2) and not TRAINED_SCALE.valid(math.inf) and not TRAINED_SCALE.valid(0)
    assert EVALUATED_SCALE.valid(math.inf) and not EVALUATED_SCALE.valid(0) and not EVALUATED_SCALE.valid(math.nan)
    assert RECIPE_SCALE.valid("auto") and RECIPE_SCALE.valid(1.5) and not RECIPE_SCALE.valid(math.inf)
    assert not RECIPE_SCALE.valid("big") and not RECIPE_SCALE.valid(True) and not TRAINED_SCALE.valid(True)


@pytest.mark.parametrize("options, message", [
    (dict(num_pem=-1), "num_pem must be an integer >= 0, got -1"),
    (dict(num_pem=True), "num_pem must be an integer >= 0, got True"),
    (dict(pem_type="PSPHead"), "pem_type must be one of the pem types auto, FCNHead, got 'PSPHead'"),
    (dict(scale_factor=math.inf), "scale factor must be a finite number > 0, got inf"),
    (dict(freeze_decode="yes"), "freeze_decode must be True or False, got 'yes'"),
    (dict(protocol="paper"), "protocol must be one of the protocols upstream, fixed, got 'paper'"),
    (dict(num_pem=0, freeze_backbone=True, freeze_decode=True), "leaves nothing to train"),
])
def test_one_error_family_with_the_option_named(options, message):
    with pytest.raises(OptionError) as exc:
        NPEOptions(**options)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert isinstance(exc.value, ConfigError) and isinstance(exc.value, UserError)
    assert exc.value.option in NAMES


def test_values_are_normalised_and_frozen():
    options = NPEOptions(num_pem=2, scale_factor=3)
    assert isinstance(options.scale_factor, float) and options.num_pem == 2
    with pytest.raises(AttributeError):
        options.num_pem = 3  # type: ignore[misc]
    assert NUM_PEM.check(0) == 0
