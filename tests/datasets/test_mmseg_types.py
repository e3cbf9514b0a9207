"""The generated sets load through MMSeg: registered dataset classes and the config fragments."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from npe import datasets
from npe.paths import PACKAGE_DIR

import mmseg  # noqa: E402,F401 - a dependency: missing is a failure, not a skip


@pytest.mark.parametrize("name, cls_name", [("smoke", "SmokeDataset"), ("longtail_synth", "LongtailSynthDataset")])
def test_registered_dataset_reads_prepared_split(tmp_path, name, cls_name):
    import npe.datasets.mmseg_types  # noqa: F401 - registers
    from mmseg.datasets import BaseSegDataset
    from mmseg.registry import DATASETS

    spec = datasets.get(name)
    out = spec.prepare(tmp_path)
    cls = DATASETS.get(cls_name)
    assert cls_name == spec.mmseg_type and issubclass(cls, BaseSegDataset)
    assert tuple(cls.METAINFO["classes"]) == spec.class_names and len(cls.METAINFO["palette"]) == spec.num_classes
    ds = DATASETS.build(dict(
        type=cls_name, data_root=str(out), _scope_="mmseg",
        data_prefix=dict(img_path="images/holdout", seg_map_path="annotations/holdout"),
        pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")]))
    assert len(ds) == len(list((out / "images" / "holdout").glob("*.png")))
    sample = ds[0]
    label = np.asarray(Image.open(sample["seg_map_path"]))
    assert sample["img"].shape == (64, 64, 3)
    assert np.array_equal(sample["gt_seg_map"], label)  # no zero reduction, indices as written


@pytest.mark.parametrize("name", ["smoke", "longtail_synth"])
def test_config_fragment_builds_train_and_val(tmp_path, name):
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    out = datasets.get(name).prepare(tmp_path)
    cfg = Config.fromfile(str(PACKAGE_DIR / "configs" / "_base_" / "datasets" / f"{name}.py"))
    assert cfg.data_root == f"segmentation/data/{name}"
    assert cfg.val_evaluator == dict(type="IoUMetric", iou_metrics=["mIoU", "mDice"])
    import_modules_from_strings(**cfg.custom_imports)
    for loader, split in (("train_dataloader", "training"), ("val_dataloader", "validation"),
                          ("test_dataloader", "validation"), ("holdout_dataloader", "holdout")):
        ds_cfg = cfg[loader]["dataset"].copy()
        ds_cfg["data_root"] = str(out)
        ds_cfg["_scope_"] = "mmseg"
        ds = DATASETS.build(ds_cfg)
        assert len(ds) == len(list((out / "images" / split).glob("*.png")))
        packed = ds[0]
        assert tuple(packed["inputs"].shape) == (3, 64, 64)
        assert packed["data_samples"].gt_sem_seg.data.shape[-2:] == (64, 64)
