"""One-pass evaluation of several adjustments (scale factors s, NPE-LA / counted LA / none).

Every adjustment is linear in 1/s and applied to the logits before MMSeg's sliding-window stitching,
its final resize and the argmax, so one forward pass can serve every s: the wrapper head returns the
adjusted logits of all K requested ``(kind, s)`` side by side on the channel axis (K x C channels,
:meth:`npe.models.wrapper.MultiHeadWrapper.adjust_blocks`), MMSeg stitches and resizes them like any
logits, and :class:`npe.metrics.NPEIoUMetric` takes the argmax of each block of C channels.

Why per window and not "stitch z and the PEM term once, combine afterwards": each block is formed in
the window with exactly the operations the per-s evaluation uses (``z + c/s``), and stitching, padding,
flipping and bilinear resizing act on every channel separately, so every block is bit for bit the
per-s logits and the confusion counts are equal, not merely close. Combining after stitching is
cheaper (2 C channels through stitching and resize instead of K C) but rounds differently
(``sum(z)/n + (sum(c)/n)/s`` against ``sum(z + c/s)/n``) and can flip near-tied pixels. On the small
models of this kit the forward pass dominates, so the exact form costs little (benchmarks/README.md).

Test-time augmentation: MMSeg's ``SegTTAModel`` averages the softmax over the augmented views;
:class:`NPESweepTTAModel` does the same for each block separately (same operations per block).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from mmengine.structures import PixelData
from mmseg.models.segmentors.seg_tta import SegTTAModel
from mmseg.registry import MODELS

#: What an adjustment block may be: NPE-LA, counted-prior LA of the main head, or none.
KINDS = ('npe', 'counted', 'none')


@MODELS.register_module(force=True)
class NPESweepTTAModel(SegTTAModel):
    """``SegTTAModel`` whose logits hold ``num_blocks`` blocks of adjusted logits: the softmax of the
    views is averaged block by block, and the merged sample keeps the averaged probabilities of every
    block as ``seg_logits`` (the metric takes each block's argmax). ``num_blocks = 1`` merges exactly
    like ``SegTTAModel``."""

    num_blocks: int = 1

    def merge_preds(self, data_samples_list):
        if self.num_blocks == 1:
            return super().merge_preds(data_samples_list)
        predictions = []
        for data_samples in data_samples_list:
            first = data_samples[0].seg_logits.data
            channels = first.shape[0] // self.num_blocks
            merged = []
            for k in range(self.num_blocks):
                part = slice(k * channels, (k + 1) * channels)
                probs = torch.zeros(first[part].shape).to(first)
                for sample in data_samples:
                    probs += sample.seg_logits.data[part].softmax(dim=0)
                probs /= len(data_samples)
                merged.append(probs)
            out = data_samples[-1]
            out.set_data({'seg_logits': PixelData(data=torch.cat(merged, dim=0)),
                          'pred_sem_seg': PixelData(data=merged[0].argmax(dim=0))})
            if hasattr(data_samples[0], 'gt_sem_seg'):
                out.set_data({'gt_sem_seg': data_samples[0].gt_sem_seg})
            out.set_metainfo({'img_path': data_samples[0].img_path})
            predictions.append(out)
        return predictions


def _segmentors(model) -> Iterator:
    """The segmentor(s) inside DDP / TTA wrappers."""
    while hasattr(model, 'module'):
        if isinstance(model, SegTTAModel):
            yield model
        model = model.module
    yield model


def iou_metrics(runner) -> list:
    """The runner's NPEIoUMetric instances."""
    from npe.metrics import NPEIoUMetric

    return [m for m in runner.test_evaluator.metrics if isinstance(m, NPEIoUMetric)]


@contextlib.contextmanager
def blocks_installed(runner, head, blocks: Sequence[tuple[str, float]]):
    """Make the next ``runner.test()`` evaluate every ``(kind, s)`` of ``blocks`` in one pass.

    With one block the model's output has the usual C channels and MMSeg's own argmax and metric
    path runs unchanged (this is the per-s evaluation); with K > 1 the output has K x C channels and
    the metric reads every block (``NPEIoUMetric.last_sweep``).
    """
    blocks = [(str(kind), float(s)) for kind, s in blocks]
    num = len(blocks)
    models = list(_segmentors(runner.model))
    saved = [(m, getattr(m, 'out_channels', None)) for m in models]
    metrics = iou_metrics(runner)
    head.eval_blocks = blocks
    try:
        for m in models:
            if isinstance(m, SegTTAModel):
                m.num_blocks = num
            elif getattr(m, 'out_channels', None) is not None:
                m.out_channels = head.num_classes * num  # sliding-window stitching buffer
        for metric in metrics:
            metric.num_blocks = num if num > 1 else 0
        yield
    finally:
        head.eval_blocks = None
        for m, channels in saved:
            if isinstance(m, SegTTAModel):
                m.num_blocks = 1
            elif channels is not None:
                m.out_channels = channels
        for metric in metrics:
            metric.num_blocks = 0
