"""MMSeg dataset classes of the built-in generated sets (import registers them in ``mmseg.registry.DATASETS``).

Configs load this module with ``custom_imports = dict(imports=['npe.datasets.mmseg_types'])`` (the
dataset config fragments in ``npe/configs/_base_/datasets/`` do).
"""
from __future__ import annotations

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .synthetic import LONGTAIL_CLASSES, PALETTE, SMOKE_CLASSES


class _GeneratedDataset(BaseSegDataset):
    """PNG images and single-channel PNG class-index labels (255 = ignore), no zero reduction."""

    def __init__(self, img_suffix: str = ".png", seg_map_suffix: str = ".png", reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)


@DATASETS.register_module(force=True)
class SmokeDataset(_GeneratedDataset):
    """The ``smoke`` set: 3 classes, 64x64 images (see ``npe.datasets.synthetic``)."""

    METAINFO = dict(classes=SMOKE_CLASSES, palette=[list(c) for c in PALETTE[:len(SMOKE_CLASSES)]])


@DATASETS.register_module(force=True)
class LongtailSynthDataset(_GeneratedDataset):
    """The ``longtail_synth`` set: 7 classes with exponentially decaying pixel shares (100x imbalance)."""

    METAINFO = dict(classes=LONGTAIL_CLASSES, palette=[list(c) for c in PALETTE[:len(LONGTAIL_CLASSES)]])
