"""A recipe's inputs: its dataset, its initial checkpoint, and the counted class prior."""
from __future__ import annotations

import math
from pathlib import Path

from npe import datasets
from npe.errors import UserError
from npe.recipes import Recipe


def prepare_inputs(recipe: Recipe, data_root: Path, mirror: str | None = None,
                   offline: bool = False) -> Path | None:
    """Prepare the recipe's dataset and fetch its initial checkpoint; return the checkpoint path.

    Both are attempted before failing, so one message lists everything still to fetch.
    """
    problems = []
    try:
        datasets.get(recipe.dataset).prepare(data_root, mirror=mirror, offline=offline)
    except UserError as exc:
        problems.append(str(exc))
    checkpoint = None
    if recipe.load_from is not None:
        try:
            checkpoint = datasets.fetch_checkpoint(recipe.load_from.url, checksum=recipe.load_from.sha256,
                                                   data_root=data_root, mirror=mirror, offline=offline)
        except UserError as exc:
            problems.append(str(exc))
    if problems:
        raise UserError('\n'.join(problems))
    return checkpoint


def counted_log_prior(recipe: Recipe, data_root: Path) -> tuple[list[float], list[float]]:
    """Training-set pixel shares and their logs (the counted prior of classic logit adjustment)."""
    counts = [int(c) for c in datasets.get(recipe.dataset).class_pixel_counts(data_root, 'training')]
    total = sum(counts)
    share = [c / total for c in counts]
    return share, [math.log(max(p, 1e-12)) for p in share]
