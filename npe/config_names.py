"""Config names (``mmseg::<rel>``, ``npe::<rel>`` or a plain path) and their one resolver.

``mmseg::`` configs ship inside the mmsegmentation wheel (``mmseg/.mim/configs``); ``npe::`` configs
ship with this package (``npe/configs``). Resolving a name never imports mmseg (no torch import).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from npe.errors import ConfigError

SCOPES = ("mmseg", "npe")
_NPE_CONFIGS = Path(__file__).resolve().parent / "configs"


def scope_root(scope: str) -> Path:
    """The folder a scope's names are relative to; :class:`ConfigError` when mmseg is not installed."""
    if scope == "npe":
        return _NPE_CONFIGS
    if scope == "mmseg":
        # find_spec locates the package without importing it (importing mmseg pulls in torch and mmcv).
        spec = importlib.util.find_spec("mmseg")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("mmseg:: configs cannot be resolved: mmsegmentation is not installed "
                              "(run scripts/setup.sh)")
        return Path(list(spec.submodule_search_locations)[0]) / ".mim" / "configs"
    raise ConfigError(f"unknown config scope {scope!r}; use one of {', '.join(s + '::' for s in SCOPES)}")


def resolve(name: str, relative_to: str | Path | None = None) -> tuple[str | None, Path]:
    """``(scope, file)`` behind a config name, not checked for existence.

    ``scope`` is ``'mmseg'``, ``'npe'`` or None for a plain path, which is taken relative to
    ``relative_to`` when given (a recipe's folder) and as written otherwise. Another ``xyz::`` prefix
    is a :class:`ConfigError`.
    """
    text = str(name)
    scope, sep, rest = text.partition("::")
    if sep:
        if scope not in SCOPES:
            where = "a path relative to the recipe" if relative_to is not None else "a file path"
            raise ConfigError(f"{text!r}: unknown scope (use mmseg::, npe:: or {where})")
        return scope, scope_root(scope) / rest
    path = Path(text).expanduser()
    if relative_to is not None:
        path = (Path(relative_to) / path).resolve()
    return None, path
