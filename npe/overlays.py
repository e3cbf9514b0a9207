"""Prediction overlays of one evaluated s (``npe-test --show-dir DIR``), drawn by MMSeg itself.

MMSeg's ``SegVisualizationHook`` draws, for every test image, the ground truth and the prediction over
the image with ``SegLocalVisualizer`` (as ``tools/test.py --show-dir``) into ``DIR/vis_data/vis_image/``. An
evaluation of one adjustment block leaves MMSeg's own prediction path unchanged (:mod:`npe.sweep`), so
the drawn prediction is the adjusted one; several s in one pass would not be, hence one extra pass at
the s to draw when more than one was evaluated.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from npe.constants import AUTO
from npe.errors import ConfigError

_ONE_S = '--show-dir draws one s: give one --scale-factor value, or include auto (the chosen s is drawn)'


def overlay_options(show_dir: str | Path) -> dict[str, Any]:
    """``cfg_options`` that make the test loop draw every image into ``show_dir``."""
    # whole sections, not their leaves: a stock config names neither draw nor save_dir (no unknown-key warning)
    return {'default_hooks.visualization': dict(type='SegVisualizationHook', draw=True, interval=1),
            'visualizer': dict(save_dir=str(Path(show_dir).resolve()))}


def check_request(values: Sequence[Any]) -> None:
    """Before any work: overlays are for one s, so several values need ``auto`` among them (drawn)."""
    if len(values) != 1 and AUTO not in values:
        raise ConfigError(_ONE_S)


def which_row(rows: Sequence[dict]) -> dict:
    """The row whose s is drawn: the one ``auto`` chose, else the only one; several numeric s are a
    :class:`ConfigError` (overlays are for one s)."""
    auto = [r for r in rows if r.get('auto')]
    if auto:
        return auto[0]
    if len(rows) == 1:
        return rows[0]
    raise ConfigError(_ONE_S)


def draw(evaluate: Callable[..., list[dict]], given: dict, rows: Sequence[dict], show_dir: str | Path) -> Path:
    """Draw the overlays of :func:`which_row`'s s with ``evaluate(**given)`` (the arguments of the
    evaluation that made ``rows``); returns the folder the images are in."""
    row = which_row(rows)
    options = {**(given.get('cfg_options') or {}), **overlay_options(show_dir)}
    evaluate(**dict(given, scale_factors=(None,), adjustments=[(row['adjustment'], row['scale_factor'])],
                    cfg_options=options, record_prior=False))
    return Path(show_dir).resolve() / 'vis_data' / 'vis_image'   # MMEngine's LocalVisBackend layout
