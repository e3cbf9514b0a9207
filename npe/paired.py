"""Paired comparisons over seeds: is the difference between two table rows real?

Two rows of a recipe run with the same seed share the data order and the initialisation (and, for the
post-hoc rows such as ``counted_la``, the trained model itself), so the question "is A better than B"
is asked of the per-seed differences A − B, not of two means ± std side by side. For the seeds both
rows have, :func:`paired_difference` gives the differences, their mean, a t confidence interval of the
mean (``scipy.stats.ttest_1samp``; the same as ``ttest_rel`` on the two columns) and a plain verdict;
:func:`seeds_needed` says how many seeds an interval of the observed spread needs to exclude 0.

Why a t interval over seeds and not a bootstrap over validation images: result files hold whole-set
metrics and a class confusion matrix per run, no per-image numbers, and the variation that decides a
comparison here is between trainings (seeds), which images cannot resample. Numbers only; the tables
(``npe.tables``) format them. docs/tables.md explains the method for readers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
#: :func:`seeds_needed` looks no further; beyond it a difference is "not separable in practice".
MAX_SEEDS = 1000
#: Metrics are recorded with at most 4 decimals, so digits of a difference beyond the 6th are float
#: noise; rounding them away makes equal per-seed differences exactly equal (sd 0, not 1e-15).
DECIMALS = 6


@dataclass(frozen=True)
class Paired:
    """Per-seed differences A − B over the seeds both sides have, and what they say.

    ``low`` / ``high``: the two-sided t confidence interval of the mean difference (None for n < 2);
    ``needed``: :func:`seeds_needed` at the observed mean and sd (None where undefined).
    """

    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None
    needed: int | None
    confidence: float = CONFIDENCE

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def verdict(self) -> str:
        """"better" / "worse" (the interval excludes 0; metrics where higher is better), "equal at n
        seeds" (every difference 0), else "not separated at n seeds"."""
        n = self.n
        if n == 0:
            return "no seeds in common"
        plural = "s" if n != 1 else ""
        if all(d == 0 for d in self.diffs):
            return f"equal at {n} seed{plural}"
        if self.low is not None and self.low > 0:
            return "better"
        if self.high is not None and self.high < 0:
            return "worse"
        return f"not separated at {n} seed{plural}"


def _common(a: Mapping[int, float | None], b: Mapping[int, float | None]) -> list[int]:
    def usable(v: float | None) -> bool:
        return v is not None and not math.isnan(v)

    return sorted(seed for seed in set(a) & set(b) if usable(a[seed]) and usable(b[seed]))


def _quantile(confidence: float, df: np.ndarray | int) -> np.ndarray | float:
    """Two-sided t critical value: half the remaining probability in each tail."""
    return sps.t.ppf(0.5 + confidence / 2.0, df)


def seeds_needed(mean: float | None, sd: float | None, confidence: float = CONFIDENCE,
                 limit: int = MAX_SEEDS) -> int | None:
    """The smallest number of seeds m >= 2 at which a t interval of half-width
    t(m-1) * sd / sqrt(m) is below |mean|, i.e. would exclude 0 if a new run showed the same mean
    difference and spread. It plugs the observed values in (about even odds of separating at that m,
    not a power calculation). ``limit + 1`` when even ``limit`` seeds are not enough; None when
    undefined (no spread observed, or a mean difference of 0)."""
    if mean is None or sd is None or mean == 0:
        return None
    if sd == 0:
        return 2  # no spread: any interval has width 0
    m = np.arange(2, limit + 1)
    ok = _quantile(confidence, m - 1) * sd / np.sqrt(m) < abs(mean)
    return int(m[np.argmax(ok)]) if ok.any() else limit + 1


def paired_difference(a: Mapping[int, float | None], b: Mapping[int, float | None],
                      confidence: float = CONFIDENCE) -> Paired:
    """Paired comparison of ``a`` against ``b`` (seed -> value; None or NaN = no value) over the
    seeds both have: the differences a − b, their mean, sample sd (ddof=1), the t interval of the
    mean from ``scipy.stats.ttest_1samp`` (width 0 when every difference is the same) and
    :func:`seeds_needed`."""
    seeds = _common(a, b)
    diffs = tuple(round(float(a[s]) - float(b[s]), DECIMALS) + 0.0 for s in seeds)   # + 0.0: no -0.0
    if not diffs:
        return Paired((), (), None, None, None, None, None, confidence)
    arr = np.array(diffs)
    mean = round(float(arr.mean()), DECIMALS) + 0.0
    if arr.size < 2:
        return Paired(tuple(seeds), diffs, mean, None, None, None, None, confidence)
    sd = float(arr.std(ddof=1))
    if sd == 0:
        low = high = mean
    else:
        interval = sps.ttest_1samp(arr, 0.0).confidence_interval(confidence)
        low, high = float(interval.low), float(interval.high)
    return Paired(tuple(seeds), diffs, mean, sd, low, high, seeds_needed(mean, sd, confidence), confidence)
