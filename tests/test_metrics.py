"""NPEIoUMetric's per-image areas are MMSeg's, bit for bit (they are derived from confusion counts)."""
from __future__ import annotations

import pytest
import torch
from mmseg.evaluation.metrics import IoUMetric

from npe.metrics import NPEIoUMetric


@pytest.mark.parametrize('seed, shape, classes', [(0, (64, 64), 7), (1, (37, 91), 2), (2, (512, 683), 150)])
def test_areas_equal_mmseg_intersect_and_union(seed, shape, classes):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, classes, shape, generator=g)
    label[torch.rand(shape, generator=g) < 0.1] = 255          # ignored pixels
    pred = torch.randint(0, classes, shape, generator=g)
    pred[: shape[0] // 3] = label[: shape[0] // 3].clamp(max=classes - 1)   # some agreement
    metric = NPEIoUMetric(ignore_index=255)
    *ours, confusion = metric._entry(pred, label, classes)
    theirs = IoUMetric.intersect_and_union(pred, label, classes, 255)
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b)
    valid = label != 255
    assert confusion.dtype == torch.int64 and int(confusion.sum()) == int(valid.sum())
    assert int(confusion.trace()) == int((pred[valid] == label[valid]).sum())


def test_label_outside_the_classes_takes_mmsegs_path():
    label = torch.tensor([[0, 1, 5], [255, 2, 1]])   # 5: not a class of this 3-class metric
    pred = torch.tensor([[0, 2, 1], [1, 2, 1]])
    *ours, confusion = NPEIoUMetric(ignore_index=255)._entry(pred, label, 3)
    for a, b in zip(ours, IoUMetric.intersect_and_union(pred, label, 3, 255)):
        assert torch.equal(a, b)
    assert confusion.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
