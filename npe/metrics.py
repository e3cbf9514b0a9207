"""``NPEIoUMetric``: MMSeg's IoUMetric that also keeps the per-class numbers (registered on import).

MMSeg's ``IoUMetric`` returns only the class means and prints the per-class values as a table in the
log. ``npe-test`` needs them as numbers, so this subclass computes the per-class arrays from the same
accumulated areas with the same formulas and keeps them on the instance (``last_per_class``) instead
of putting lists into the metric dict (which MMEngine would push through its scalar logging).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS


def _percent(values: Any) -> list[float | None]:
    """Per-class fractions -> percent floats (4 decimals); NaN (class absent from labels and predictions) -> None."""
    out: list[float | None] = []
    for value in list(values):
        value = float(value)
        # float32 areas: 4 decimals of a percentage are all the precision there is
        out.append(None if math.isnan(value) else round(value * 100.0, 4))
    return out


@METRICS.register_module(force=True)
class NPEIoUMetric(IoUMetric):
    """``IoUMetric`` plus per-class IoU / Acc / Dice (percent) in :attr:`last_per_class`.

    The summary dict it returns is exactly the parent's, so logs and ``runner.test()`` look as usual.
    ``last_per_class`` is ``{"classes": [...], "IoU": [...], "Acc": [...], "Dice": [...]}`` (keys for
    the metrics asked for; None for classes with no pixels) plus ``confusion`` (C x C integer counts,
    rows = ground truth, columns = prediction); it is set on the process that computes the metrics
    (rank 0 under DDP). With ``num_blocks`` K > 1 (one-pass sweep, :mod:`npe.sweep`) it reads K
    blocks of logits per image and keeps one summary and table per block in :attr:`last_sweep`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.last_per_class: dict[str, list] | None = None
        #: One-pass sweep (:mod:`npe.sweep`): 0 = off (read ``pred_sem_seg`` as usual); K > 1 = the
        #: logits hold K blocks of C channels, one argmax and one confusion count per block.
        self.num_blocks = 0
        #: After a sweep: ``[(summary, per_class), ...]``, one per block.
        self.last_sweep: list[tuple[dict, dict | None]] | None = None
        #: Image names (file name up to the first dot) whose predicted label maps to keep, and
        #: after the pass ``{name: [uint8 map per block]}`` (examples figure).
        self.keep_images: set[str] = set()
        self.kept: dict[str, list] = {}

    def _keep(self, sample, preds) -> None:
        if not self.keep_images:
            return
        name = str(sample.get('img_path', '')).replace('\\', '/').split('/')[-1].split('.')[0]
        if name in self.keep_images:
            self.kept[name] = [p.to('cpu').numpy().astype('uint8') for p in preds]

    def _valid(self, label, num_classes: int) -> tuple:
        """The non-ignored pixels of one label map: (mask, their labels, whether every one of them is
        a class 0..C-1). Once per image: a one-pass sweep reads K blocks against the same labels."""
        valid = label != self.ignore_index
        labels = label[valid]
        plain = not labels.numel() or (int(labels.min()) >= 0 and int(labels.max()) < num_classes)
        return valid, labels, plain

    def _entry(self, pred, label, num_classes: int, prepared: tuple | None = None) -> tuple:
        """MMSeg's four per-class areas of one image, plus its C x C confusion counts (int64,
        rows = label, columns = prediction, ignored pixels left out). ``prepared``: :meth:`_valid`
        of ``label`` (already on ``pred``'s device and dtype) when the caller has it.

        The areas come from the confusion counts (one bincount instead of MMSeg's masking and three
        histograms: a one-pass sweep does this K times per image). They are the same float32 pixel
        counts MMSeg's ``intersect_and_union`` returns (``tests/test_metrics.py``); a label outside
        0..C-1 that is not ignored, which MMSeg counts differently, takes MMSeg's own path.
        """
        if prepared is None:
            label = label.to(pred)
            prepared = self._valid(label, num_classes)
        valid, labels, plain = prepared
        pred = pred[valid]
        if not plain:
            areas = self.intersect_and_union(pred, labels, num_classes, self.ignore_index)
            keep = (labels >= 0) & (labels < num_classes)
            confusion = torch.bincount(labels[keep] * num_classes + pred[keep],
                                       minlength=num_classes * num_classes)
            return (*areas, confusion.reshape(num_classes, num_classes).cpu())
        confusion = torch.bincount(labels * num_classes + pred,
                                   minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()
        area_intersect = confusion.diagonal().float()
        area_pred = confusion.sum(0).float()
        area_label = confusion.sum(1).float()
        return area_intersect, area_pred + area_label - area_intersect, area_pred, area_label, confusion

    def process(self, data_batch: dict, data_samples) -> None:
        if self.format_only or self.output_dir is not None:
            self.num_blocks = 0
            return super().process(data_batch, data_samples)
        num_classes = len(self.dataset_meta['classes'])
        for sample in data_samples:
            label = sample['gt_sem_seg']['data'].squeeze()
            if not self.num_blocks:
                pred = sample['pred_sem_seg']['data'].squeeze()
                self.results.append(self._entry(pred, label, num_classes))
                self._keep(sample, [pred])
                continue
            logits = sample['seg_logits']['data']
            label = label.to(device=logits.device, dtype=torch.int64)  # what .to(argmax) gives
            prepared = self._valid(label, num_classes)
            entries, preds = [], []
            for k in range(self.num_blocks):
                # the argmax MMSeg's postprocess_result takes, on this block's C channels
                pred = logits[k * num_classes:(k + 1) * num_classes].argmax(dim=0, keepdim=True).squeeze()
                entries.append(self._entry(pred, label, num_classes, prepared))
                preds.append(pred)
            self.results.append(tuple(entries))
            self._keep(sample, preds)

    def _per_class(self, results: list) -> dict[str, list] | None:
        if self.format_only or not results:
            return None
        columns = tuple(zip(*results))
        per_class = self.total_area_to_metrics(
            sum(columns[0]), sum(columns[1]), sum(columns[2]), sum(columns[3]),
            self.metrics, self.nan_to_num, self.beta)
        table: dict[str, list] = {'classes': list(self.dataset_meta['classes'])}
        for key, values in per_class.items():
            if key != 'aAcc':
                table[key] = _percent(values)
        if len(columns) > 4:
            table['confusion'] = sum(columns[4]).tolist()
        return table

    def _summary(self, results: list) -> dict[str, float]:
        return super().compute_metrics([r[:4] for r in results])

    def compute_metrics(self, results: list) -> dict[str, float]:
        self.last_per_class = None
        self.last_sweep = None
        if not self.num_blocks:
            self.last_per_class = self._per_class(results)
            return self._summary(results)
        sweep = []
        for k in range(self.num_blocks):
            block = [r[k] for r in results]
            sweep.append((self._summary(block), self._per_class(block)))
        self.last_sweep = sweep
        self.last_per_class = sweep[0][1]
        return sweep[0][0]
