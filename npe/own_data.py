"""Datasets the kit does not prepare: any MMSeg dataset config plus the folder its data is in.

One home for what the driver and ``npe-test`` need from such a dataset:

- :class:`OwnData`: a recipe's ``dataset:`` mapping (dataset config, data root, held-out part);
- :func:`apply_own_data`: the dataset config's data keys put into a model config in place of the
  base config's (dataloaders, evaluators, imports, number of classes), pointed at the data root,
  with the held-out part set aside (``cfg.npe_holdout``, read by ``evaluate(data_split='holdout')``);
- :func:`class_pixel_counts` / :func:`counted_prior`: the class pixel shares of a config's TRAINING
  split, read through MMSeg's own dataset class (its suffixes, ``ann_file``, ``reduce_zero_label``,
  ``label_map``, ``indices``), counted once and cached beside the data under a checksum of the file
  list (names, sizes, modification times), with progress logged.

The held-out part, on which ``auto`` chooses s (never on the validation set), is either a split
folder of its own (``holdout_split``) or a fraction of the training images drawn with a fixed seed
(``holdout_fraction``). A drawn fraction is removed from training (the training dataset gets MMEngine's
``indices`` = the other images), so s is never chosen on images the model was trained on, and the
counted prior is that of the images trained on.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from npe import config_names
from npe.datasets.base import COUNTS_FILE, count_labels
from npe.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: Seed of the draw of a held-out fraction: fixed, so every run and every seed holds out the same images.
HOLDOUT_SEED = 0
#: Config keys a dataset config brings (they replace the base config's, never merge into them).
DATA_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator')


@dataclass(frozen=True)
class OwnData:
    """A dataset given by an MMSeg dataset config and a data root (a recipe's ``dataset:`` mapping).

    ``config``: as written (``mmseg::`` name or path); ``config_path``: the resolved file;
    ``data_root``: the folder the config's ``data_prefix`` paths are relative to; at most one of
    ``holdout_split`` (``{img_path, seg_map_path}`` under the data root) and ``holdout_fraction``.
    """

    config: str
    config_path: Path
    data_root: Path
    holdout_split: dict | None = None
    holdout_fraction: float | None = None

    @property
    def name(self) -> str:
        """The dataset's name in result files and tables: the dataset config's file stem."""
        return self.config_path.stem

    @property
    def has_holdout(self) -> bool:
        """Whether ``auto`` can choose s (a held-out part is declared)."""
        return self.holdout_split is not None or self.holdout_fraction is not None


def own_data_from_recipe(value: Any, recipe_path: Path) -> OwnData:
    """The :class:`OwnData` of a validated ``dataset:`` mapping; paths are relative to the recipe.

    The config file need not exist here (checked where it is loaded, so tables can be rebuilt
    without it); ``mmseg::`` names resolve into the installed MMSeg.
    """
    folder = Path(recipe_path).parent
    _, config_path = config_names.resolve(value.config, relative_to=folder)
    split = value.holdout_split.model_dump() if value.holdout_split is not None else None
    return OwnData(config=value.config, config_path=config_path,
                   data_root=(folder / Path(value.data_root).expanduser()).resolve(),
                   holdout_split=split, holdout_fraction=value.holdout_fraction)


def check_data_root(own: OwnData) -> None:
    """:class:`DataError` (one line) when the data root or the dataset config is missing."""
    if not own.config_path.is_file():
        raise ConfigError(f'dataset config {own.config!r} not found (looked for {own.config_path}); '
                          "fix the recipe's dataset.config")
    if not own.data_root.is_dir():
        raise DataError(f'dataset data root {own.data_root} does not exist; put the data there or fix '
                        "the recipe's dataset.data_root (relative to the recipe file)")


# ----------------------------------------------------------------------------- config
def apply_own_data(cfg, own: OwnData):
    """Put ``own``'s dataset into the model config ``cfg`` (in place, before ``apply_npe``).

    The dataset config's dataloaders and evaluators replace the base config's (a merge would keep
    the base dataset's type or suffixes), its ``custom_imports`` are added, every dataset is pointed
    at the data root, the decode (and auxiliary) heads get the dataset's number of classes, and the
    held-out part is set aside (:func:`set_holdout`). Returns ``cfg``.
    """
    from npe.config import load_base_config, set_data_root

    check_data_root(own)
    data = load_base_config(str(own.config_path))
    for key in ('train_dataloader', 'val_dataloader'):
        if not data.get(key):
            raise ConfigError(f'dataset config {own.config!r} has no {key}; a dataset config sets '
                              'train_dataloader and val_dataloader (and optionally test_dataloader)')
    for key in DATA_KEYS:
        if data.get(key) is not None:
            cfg[key] = copy.deepcopy(data[key])
    if not data.get('test_dataloader'):   # MMSeg's convention: test on the validation split
        cfg.test_dataloader = copy.deepcopy(data.val_dataloader)
    if not data.get('test_evaluator') and data.get('val_evaluator'):
        cfg.test_evaluator = copy.deepcopy(data.val_evaluator)
    imports = list((cfg.get('custom_imports') or {}).get('imports', []))
    extra = list((data.get('custom_imports') or {}).get('imports', []))
    if extra:
        cfg.custom_imports = dict(imports=imports + [m for m in extra if m not in imports],
                                  allow_failed_imports=False)
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(imports=extra, allow_failed_imports=False)
    if data.get('dataset_type'):
        cfg.dataset_type = data.dataset_type
    set_data_root(cfg, own.data_root)
    classes = class_names(cfg)
    model = cfg.get('model') or {}
    heads = [model.get('decode_head')] + (model.get('auxiliary_head') if isinstance(model.get('auxiliary_head'), list)
                                         else [model.get('auxiliary_head')])
    for head in heads:
        if head is not None and 'num_classes' in head:
            head['num_classes'] = len(classes)
    set_holdout(cfg, own)
    return cfg


def _leaves(cfg, loader: str = 'train_dataloader') -> list[tuple[str, dict]]:
    from npe.config import leaf_datasets

    return leaf_datasets((cfg.get(loader) or {}).get('dataset'), f'{loader}.dataset')


def build_dataset(dataset_cfg: dict):
    """MMSeg's dataset object for one leaf dataset config, without its pipeline (only the file
    list and meta information are read); a dataset MMSeg cannot read is a :class:`DataError`."""
    from npe.config import register

    register()
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    plain = copy.deepcopy(dict(dataset_cfg))
    plain.update(pipeline=[], lazy_init=False)
    try:
        return DATASETS.build(plain)
    except Exception as exc:  # a wrong folder, suffix or ann_file: the user's data, one line
        where = Path(str(plain.get('data_root', ''))) / str((plain.get('data_prefix') or {}).get('img_path', ''))
        raise DataError(f'dataset {plain.get("type")!r} at {where} cannot be read: {type(exc).__name__}: '
                        f'{str(exc).splitlines()[0] if str(exc) else ""}; check data_root, data_prefix '
                        'and the suffixes in the dataset config') from None


def class_names(cfg) -> tuple[str, ...]:
    """The class names of the config's training dataset (its ``metainfo``, else its class's)."""
    leaves = _leaves(cfg)
    if not leaves:
        raise ConfigError('the config has no train_dataloader.dataset to read the classes from')
    key, leaf = leaves[0]
    classes = (leaf.get('metainfo') or {}).get('classes')
    if not classes:
        from npe.config import register
        register()
        from mmseg.registry import DATASETS
        from mmseg.utils import register_all_modules

        register_all_modules(init_default_scope=False)
        dataset_class = DATASETS.get(leaf.get('type'))
        classes = (getattr(dataset_class, 'METAINFO', None) or {}).get('classes') if dataset_class else None
    if not classes:
        raise ConfigError(f'{key} names no classes (no metainfo.classes, unknown type {leaf.get("type")!r}); '
                          'give metainfo=dict(classes=(...)) in the dataset config')
    return tuple(classes)


def held_out_indices(count: int, fraction: float, seed: int = HOLDOUT_SEED) -> list[int]:
    """Positions (in the dataset's sorted file list) of a held-out ``fraction`` of ``count``
    images, drawn with ``seed``; at least one image is held out and at least one is kept."""
    n = min(count - 1, max(1, round(fraction * count)))
    if n < 1:
        raise DataError(f'a held-out fraction needs at least 2 training images, found {count}')
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(count, size=n, replace=False))


def set_holdout(cfg, own: OwnData) -> None:
    """Set aside the held-out part as ``cfg.npe_holdout`` (a test dataset config without pipeline).

    ``holdout_split``: the training dataset read from other folders; ``holdout_fraction``: the
    training dataset restricted to the drawn images, which training then leaves out (``indices``).
    """
    if not own.has_holdout:
        return
    leaves = _leaves(cfg)
    if len(leaves) != 1:
        raise ConfigError(f'dataset config {own.config!r}: a held-out part needs one training dataset, '
                          f'found {len(leaves)} (ConcatDataset); give a dataset config with one')
    _, leaf = leaves[0]
    holdout = {k: copy.deepcopy(v) for k, v in leaf.items() if k != 'pipeline'}
    if own.holdout_split is not None:
        holdout['data_prefix'] = dict(own.holdout_split)
        holdout.pop('ann_file', None)
        holdout.pop('indices', None)
    else:
        count = len(build_dataset({k: v for k, v in leaf.items() if k != 'indices'}))
        held = held_out_indices(count, float(own.holdout_fraction))
        keep = [i for i in range(count) if i not in set(held)]
        holdout['indices'] = held
        leaf['indices'] = keep
        log.info('dataset %s: %d of %d training images held out for choosing s (seed %d), %d trained on',
                 own.name, len(held), count, HOLDOUT_SEED, len(keep))
    cfg.npe_holdout = holdout


# ----------------------------------------------------------------------------- counted shares
def _file_list_checksum(files: Sequence[Path], root: Path, mapping: dict) -> str:
    """sha256 of the label files' names (relative to ``root``), sizes and modification times plus the
    label mapping: a relabelled, added or removed file is counted again (a copied folder, once)."""
    digest = hashlib.sha256(json.dumps(mapping, sort_keys=True, default=str).encode())
    for f in files:
        stat = f.stat()
        digest.update(f'{os.path.relpath(f, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode())
    return digest.hexdigest()


def class_pixel_counts(cfg) -> np.ndarray:
    """Pixels per class in the config's training split (all its datasets, as training reads them).

    Cached in ``<data root>/.npe-class-counts.json`` under the checksum of the label file list (names
    and sizes), the number of classes and the label mapping; a read-only data root answers uncached.
    """
    from npe.files import write_json_atomic

    classes = class_names(cfg)
    total = np.zeros(len(classes), dtype=np.int64)
    for key, leaf in _leaves(cfg):
        dataset = build_dataset(leaf)
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        files = [Path(info['seg_map_path']) for info in infos]
        if not files:
            raise DataError(f'{key}: no training images found under {leaf.get("data_root")}; check '
                            'data_root, data_prefix and img_suffix')
        missing = [f for f in files if not f.is_file()]
        if missing:   # MMSeg pairs labels with images by name and only fails when training reads one
            raise DataError(f'{key}: {len(missing)} of {len(files)} label files are missing, e.g. {missing[0]}; '
                            'check seg_map_path and seg_map_suffix in the dataset config')
        first = infos[0]
        mapping = dict(num_classes=len(classes), reduce_zero_label=bool(first.get('reduce_zero_label')),
                       label_map=first.get('label_map'))
        root = Path(str(leaf.get('data_root') or '.'))
        checksum = _file_list_checksum(files, root, mapping)
        # the same file as a built-in set's cache (npe.datasets.base): its keys are never a checksum
        cache_file = root / COUNTS_FILE
        try:
            cache = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cache = {}
        cached = (cache.get(checksum) or {}).get('counts')
        if cached is not None and len(cached) == len(classes):
            counts = np.asarray(cached, dtype=np.int64)
            log.info('%s: class pixel counts of %d label files from %s', key, len(files), cache_file)
        else:
            counts = count_labels(files, len(classes), mapping['reduce_zero_label'], mapping['label_map'],
                                  progress=lambda n, of, key=key: log.info(
                                      '%s: counted class pixels in %d/%d label files', key, n, of))
            cache[checksum] = dict(counts=[int(c) for c in counts], classes=list(classes), files=len(files))
            with contextlib.suppress(OSError):
                write_json_atomic(cache_file, cache)
        total += counts
    return total


def shares_and_logs(counts: Sequence[int]) -> tuple[list[float], list[float]]:
    """Pixel shares and their logs (the counted prior of classic logit adjustment)."""
    counts = [int(c) for c in counts]
    whole = sum(counts)
    if whole <= 0:
        raise DataError('the training split has no labelled pixel of any class; check the label files')
    share = [c / whole for c in counts]
    return share, [math.log(max(p, 1e-12)) for p in share]


def counted_prior(config: str | Path, kit_data_root: str | Path | None = None) -> tuple[list[float], list[float]]:
    """Shares and log prior of a config file's training split (``npe-test --counted-la``).

    ``kit_data_root``: the data moved, as ``npe-test --data-root`` (:func:`npe.config.kit_dataset_folder`).
    """
    from mmengine.config import Config

    from npe.config import kit_dataset_folder, set_data_root

    try:
        cfg = Config.fromfile(str(config))
    except Exception as exc:
        raise ConfigError(f'config {config} cannot be loaded: {type(exc).__name__}: {exc}') from None
    imports = cfg.get('custom_imports')
    if imports:
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**imports)
    if not _leaves(cfg):
        raise ConfigError(f'{config} has no train_dataloader: counted LA needs the training split to count '
                          'class pixels; give the training config')
    folder = kit_dataset_folder(cfg, kit_data_root) if kit_data_root is not None else None
    if folder is not None:
        set_data_root(cfg, folder)
    return shares_and_logs(class_pixel_counts(cfg))
