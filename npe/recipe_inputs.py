"""A recipe's inputs: its dataset, its initial checkpoint, and the counted class prior."""
from __future__ import annotations

from pathlib import Path

from npe import datasets
from npe.errors import UserError
from npe.own_data import check_data_root, shares_and_logs
from npe.recipes import Recipe


def prepare_inputs(recipe: Recipe, data_root: Path, mirror: str | None = None,
                   offline: bool = False) -> Path | None:
    """Prepare the recipe's dataset and fetch its initial checkpoint; return the checkpoint path.

    Both are attempted before failing, so one message lists everything still to fetch.
    """
    problems = []
    try:
        if recipe.own_data is not None:   # the user's data: nothing to download, it must be there
            check_data_root(recipe.own_data)
        else:
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


def counted_log_prior(recipe: Recipe, data_root: Path, train_cfg=None) -> tuple[list[float], list[float]]:
    """Training-set pixel shares and their logs (the counted prior of classic logit adjustment).

    A built-in dataset: its prepared training split; an own dataset: the training split of
    ``train_cfg`` (a job's training config, held-out images left out), :mod:`npe.own_data`.
    """
    if recipe.own_data is not None:
        from npe.own_data import class_pixel_counts
        return shares_and_logs(class_pixel_counts(train_cfg))
    return shares_and_logs(datasets.get(recipe.dataset).class_pixel_counts(data_root, 'training'))
