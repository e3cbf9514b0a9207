"""What a training run left in its work dir: which checkpoint is its latest (and readable), and its losses.

Read by the training (``--resume``, unreadable checkpoints set aside), the evaluation (the checkpoint
``npe-test WORK_DIR`` takes), the driver (the loss curves of a result file) and :func:`npe.init_model`.
Only files inside the work dir count: a copied or moved work dir never reaches back into the original
run's folder.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _checkpoint_number(p: Path) -> int:
    digits = p.stem.split('_')[-1]
    return int(digits) if digits.isdigit() else -1


def _checkpoints_highest_first(work_dir: Path) -> list[Path]:
    """``iter_N.pth`` / ``epoch_N.pth`` in ``work_dir``, highest N first. Never by modification time:
    a copy, a restore from backup or a ``touch`` makes an older checkpoint look newest."""
    ckpts = list(work_dir.glob('iter_*.pth')) + list(work_dir.glob('epoch_*.pth'))
    return sorted(ckpts, key=lambda p: (_checkpoint_number(p), p.name), reverse=True)


def _named_checkpoint(work_dir: Path) -> Path | None:
    """The file of ``work_dir`` that ``last_checkpoint`` names (it may be gone); None without one."""
    marker = work_dir / 'last_checkpoint'
    if not marker.is_file():
        return None
    try:
        candidate = work_dir / Path(marker.read_text().strip()).name
    except (OSError, UnicodeDecodeError):
        return None
    return candidate if candidate.suffix == '.pth' else None


def latest_checkpoint(work_dir: str | Path) -> Path | None:
    """The checkpoint a run in ``work_dir`` saved last (the file named in ``last_checkpoint``, else
    the ``iter_*.pth`` / ``epoch_*.pth`` of the highest number); None if there is none.

    Only files inside ``work_dir`` count: ``last_checkpoint`` holds the absolute path at save time,
    and of it only the file name is used, so a copied or moved work dir never reaches back into the
    original run's folder. :func:`checkpoint_choice_note` says why when ``last_checkpoint`` was not
    followed.
    """
    work_dir = Path(work_dir)
    named = _named_checkpoint(work_dir)
    if named is not None and named.is_file():
        return named
    ckpts = _checkpoints_highest_first(work_dir)
    return ckpts[0] if ckpts else None


def checkpoint_choice_note(work_dir: str | Path, chosen: Path | None) -> str | None:
    """One line saying why ``chosen`` was taken when ``last_checkpoint`` did not name it (missing,
    unreadable, or naming a file that is gone); None when ``last_checkpoint`` named it."""
    work_dir = Path(work_dir)
    named = _named_checkpoint(work_dir)
    if chosen is None or (named is not None and named == Path(chosen)):
        return None
    marker = work_dir / 'last_checkpoint'
    if named is None:
        why = f'{marker} is missing or names no .pth file'
    elif not named.is_file():
        why = f'{marker} names {named.name}, which is not there'
    else:
        why = f'{named.name} (named in {marker}) cannot be read'
    return f'{why}; took {Path(chosen).name}, the highest iteration in the work dir'


def readable_checkpoint(work_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The latest checkpoint in ``work_dir`` (:func:`latest_checkpoint`'s, else the highest iteration)
    that can be loaded, and the unreadable ones before it in that order (``[(path, reason)]``, e.g.
    cut off by a kill while saving)."""
    from npe.checkpoint import unreadable_reason

    work_dir = Path(work_dir)
    first = latest_checkpoint(work_dir)
    order = ([first] if first else []) + [p for p in _checkpoints_highest_first(work_dir) if p != first]
    bad = []
    for path in order:
        reason = unreadable_reason(path)
        if reason is None:
            return path, bad
        bad.append((path, reason))
    return None, bad


def set_aside(bad: list[tuple[Path, str]]) -> None:
    """Rename unreadable checkpoints to ``<name>.unreadable`` (one warning each)."""
    for path, reason in bad:
        target = path.with_name(path.name + '.unreadable')
        if path.is_file():
            path.replace(target)
            log.warning('checkpoint %s is unreadable (%s); set aside as %s', path, reason, target.name)


def training_loss(work_dir: str | Path, key: str = 'loss') -> list[list[float]]:
    """[[iteration, value], ...] of one logged loss (``loss`` = the total, ``loss_ce``,
    ``loss_one_way_logistic``) from MMEngine's scalar logs of every (resumed) session in ``work_dir``."""
    points: dict[int, float] = {}
    for scalars in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        for line in scalars.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if key in entry and 'step' in entry:
                points[int(entry['step'])] = float(entry[key])
    return [[step, points[step]] for step in sorted(points)]


def training_losses(work_dir: str | Path) -> dict[str, list[list[float]]]:
    """The total loss and, where logged, the cross-entropy and the PEM loss apart (``log`` of a
    result file): ``{"loss": [...], "loss_ce": [...], "loss_one_way_logistic": [...]}``."""
    out = {'loss': training_loss(work_dir)}
    for key in ('loss_ce', 'loss_one_way_logistic'):
        # MMSeg logs a decode head's losses under its prefix: decode.loss_ce, decode.loss_one_way_logistic
        curve = training_loss(work_dir, f'decode.{key}') or training_loss(work_dir, key)
        if curve:
            out[key] = curve
    return out
