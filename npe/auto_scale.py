"""``s = 'auto'``: the scale factor chosen on held-out training data, never on the validation set.

One rule for the driver (:func:`npe.jobs.choose_scales`), ``npe.evaluate(..., scale_factors=[...,
'auto'])`` and ``npe-test --scale-factor ... auto``: every candidate s is evaluated on the held-out
split (``data_split='holdout'``: the built-in sets' ``holdout`` folders, an own dataset's
``npe_holdout``, :mod:`npe.own_data`) in one pass, and the best by ``metric`` wins; ties go to the
smaller s.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from npe.constants import AUTO
from npe.errors import ConfigError, DataError
from npe.recipes import scale_label

#: What ``auto`` chooses by, and among, when no recipe says (``npe-test``, ``npe.evaluate``).
DEFAULT_METRIC = 'mIoU'
DEFAULT_CANDIDATES = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
HOLDOUT = 'holdout'


def pick(rows: Sequence[dict], kinds: Sequence[str], candidates: Sequence[float], metric: str,
         split: str = HOLDOUT) -> dict[str, tuple[float, dict]]:
    """The best candidate per adjustment kind among evaluation ``rows`` of the held-out split.

    Returns ``{kind: (s, {"metric", "split", "candidates": {label: score}})}``.
    """
    chosen = {}
    for kind in kinds:
        scores = {scale_label(r['scale_factor']): r['metrics'][metric] for r in rows if r['adjustment'] == kind}
        best = max(candidates, key=lambda c: (scores[scale_label(c)], -c))
        chosen[kind] = (float(best), dict(metric=metric, split=split, candidates=scores))
    return chosen


def asks_auto(scale_factors: Any, adjustments: Any) -> bool:
    """Whether an ``evaluate`` call asks for ``'auto'`` anywhere."""
    values = [s for _, s in adjustments] if adjustments is not None else list(scale_factors or ())
    return any(isinstance(s, str) and s == AUTO for s in values)


def evaluate_with_auto(evaluate: Callable[..., list[dict]], given: dict,
                       candidates: Sequence[float] | None = None, metric: str | None = None) -> list[dict]:
    """``evaluate(**given)`` where some s are ``'auto'``: one pass over the held-out split over
    ``candidates`` (None: :data:`DEFAULT_CANDIDATES`) picks them by ``metric`` (None:
    :data:`DEFAULT_METRIC`), then one pass evaluates every row; an ``auto`` row carries the chosen
    value as ``scale_factor`` and ``"auto": {"metric", "split", "candidates"}``."""
    from npe.constants import METRICS

    candidates, metric = tuple(candidates or DEFAULT_CANDIDATES), metric or DEFAULT_METRIC

    if metric not in METRICS:
        raise ConfigError(f'auto metric {metric!r} is not one of {", ".join(METRICS)}')
    if given.get('data_split') is not None:
        raise ConfigError("'auto' picks s on the held-out split; it cannot be combined with data_split")
    log_prior = given.get('log_prior')
    kind_of = 'counted' if log_prior is not None else 'npe'
    requests = (list(given['adjustments']) if given.get('adjustments') is not None
                else [(kind_of, s) for s in given['scale_factors']])
    kinds = sorted({kind for kind, s in requests if isinstance(s, str) and s == AUTO})
    holdout_args = dict(given, data_split=HOLDOUT, record_prior=False, keep_predictions=(),
                        scale_factors=(None,), out_dir=None,
                        adjustments=[(kind, c) for kind in kinds for c in candidates])
    try:
        held = evaluate(**holdout_args)
    except DataError as exc:   # e.g. STARE: no held-out split, and s is never chosen on the validation set
        raise DataError(f"'auto' chooses s on the held-out training split, which this data lacks: {exc}") from None
    chosen = pick(held, kinds, candidates, metric)
    resolved = [(kind, chosen[kind][0] if isinstance(s, str) and s == AUTO else s) for kind, s in requests]
    rows = evaluate(**dict(given, adjustments=resolved, scale_factors=(None,)))
    for (kind, s), row in zip(requests, rows):
        row['auto'] = chosen[kind][1] if isinstance(s, str) and s == AUTO else None
    return rows
