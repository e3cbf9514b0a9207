"""Datasets the kit prepares under the data root: ``get(name)`` -> :class:`DatasetSpec`, ``names()``.

Downloaded sets (``stare``, ``ade20k``) are fetched with verified, resumable downloads and converted into
MMSeg's layout; generated sets (``smoke``, ``longtail_synth``) need no network. See
``docs/internals.md`` for the contract and ``npe-data --help`` for the command.

Importing this package does not import torch or MMSeg; ``npe.datasets.mmseg_types`` registers the
generated sets' dataset classes with MMSeg when a config imports it.
"""
from __future__ import annotations

from npe.errors import UserError

from .ade20k import SPEC as _ADE20K
from .base import MARKER, DatasetSpec
from .checkpoints import checkpoint_path, checkpoint_source, fetch_checkpoint, known_checkpoint_url
from .download import Source
from .stare import SPEC as _STARE
from .synthetic import LONGTAIL_SYNTH as _LONGTAIL_SYNTH
from .synthetic import SMOKE as _SMOKE

_REGISTRY: dict[str, DatasetSpec] = {s.name: s for s in (_STARE, _ADE20K, _SMOKE, _LONGTAIL_SYNTH)}

__all__ = ["DatasetSpec", "Source", "MARKER", "get", "names", "for_mmseg_type", "checkpoint_path", "checkpoint_source",
           "fetch_checkpoint", "known_checkpoint_url"]


def names() -> list[str]:
    """Registry keys of every dataset the kit knows."""
    return list(_REGISTRY)


def for_mmseg_type(mmseg_type: str | None) -> DatasetSpec | None:
    """The kit's dataset whose MMSeg dataset class is ``mmseg_type`` (None if the kit has none)."""
    return next((s for s in _REGISTRY.values() if s.mmseg_type == mmseg_type), None)


def get(name: str) -> DatasetSpec:
    """The dataset spec registered under ``name``; an unknown name is a :class:`UserError`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}; known datasets: {', '.join(names())}") from None
