"""``NPEIoUMetric``: MMSeg's IoUMetric that also keeps the per-class numbers (registered on import).

MMSeg's ``IoUMetric`` returns only the class means and prints the per-class values as a table in the
log. ``npe-test`` needs them as numbers, so this subclass computes the per-class arrays from the same
accumulated areas with the same formulas and keeps them on the instance (``last_per_class``) instead
of putting lists into the metric dict (which MMEngine would push through its scalar logging).
"""
from __future__ import annotations

import math
from typing import Any

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
    the metrics asked for; None for classes with no pixels); it is set on the process that computes
    the metrics (rank 0 under DDP).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.last_per_class: dict[str, list] | None = None

    def compute_metrics(self, results: list) -> dict[str, float]:
        self.last_per_class = None
        if not self.format_only and results:
            columns = tuple(zip(*results))
            per_class = self.total_area_to_metrics(
                sum(columns[0]), sum(columns[1]), sum(columns[2]), sum(columns[3]),
                self.metrics, self.nan_to_num, self.beta)
            table: dict[str, list] = {'classes': list(self.dataset_meta['classes'])}
            for key, values in per_class.items():
                if key != 'aAcc':
                    table[key] = _percent(values)
            self.last_per_class = table
        return super().compute_metrics(results)
