"""Example predictions for the qualitative figure: a few validation images with rare classes present.

The driver keeps, for the recipe's first seed, the predicted label maps of a handful of validation
images (chosen by :func:`pick_images`: the most distinct classes of the rarest third present, then the
most pixels of them) for the baseline and for NPE-LA at the chosen s, and writes them beside the result
files with copies of the image and its ground truth, so the figure is rebuilt from the results folder
alone (:func:`npe.plots.plot_examples`).

The images and labels are those the evaluation reads: :func:`validation_images` lists the run config's
test dataset through MMSeg's own dataset class (its folders, suffixes, ``reduce_zero_label`` and
``label_map``), so a built-in set and a dataset of one's own (:mod:`npe.own_data`) take the same path:

    <results>/<recipe>/examples/index.json                  {"images": [...], "rows": {...}}
    <results>/<recipe>/examples/image/<name>.png, gt/<name>.png, <row folder>/<name>.png   (class indices)

A row's label (``npe1, s=2 (auto)``, what the figure shows) is kept in the index; its folder has a name
safe in any shell or path (``npe1__s2_auto``, :func:`folder_name`).
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from npe.constants import AUTO
from npe.files import write_bytes_atomic, write_json_atomic
from npe.locking import folder_lock

#: How many images the figure shows, and how many annotation files are scanned to choose them.
NUM_IMAGES = 4
MAX_SCANNED = 400
FOLDER = 'examples'


def folder_name(label: str) -> str:
    """The folder of a row's maps: ``npe1, s=2 (auto)`` -> ``npe1__s2_auto``, ``baseline`` stays; no
    commas, spaces or brackets (safe unquoted in a shell, a URL, a Makefile)."""
    match = re.fullmatch(r'(.+), s=(\S+)( \(auto\))?', label)
    if match:
        label = f'{match[1]}__s{match[2]}' + ('_auto' if match[3] else '')
    return re.sub(r'[^A-Za-z0-9._-]+', '_', label)


def _key(path: Path) -> str:
    """An image's name: its file name up to the first dot (what the evaluation keeps maps under)."""
    return path.name.split('.')[0]


@dataclass(frozen=True)
class ValidationImages:
    """The validation images the figure can show, as MMSeg's dataset class lists them for a config."""

    #: ``{name: MMSeg data info}`` (``img_path``, ``seg_map_path``, ``reduce_zero_label``,
    #: ``label_map``), the first :data:`MAX_SCANNED` in the dataset's order.
    samples: dict[str, dict]
    #: The dataset's class names (the figure's legend).
    classes: tuple[str, ...]

    def label(self, name: str) -> np.ndarray:
        """The ground truth of ``name`` as training and evaluation see it: MMSeg's ``LoadAnnotations``
        (``reduce_zero_label``: 0 -> 255, k -> k-1; then ``label_map``)."""
        from mmseg.datasets.transforms import LoadAnnotations

        info = self.samples[name]
        results = dict(seg_map_path=info['seg_map_path'], reduce_zero_label=bool(info.get('reduce_zero_label')),
                       label_map=info.get('label_map'), seg_fields=[])
        return LoadAnnotations()(results)['gt_seg_map'].astype(np.int64)

    def image(self, name: str) -> np.ndarray:
        """The RGB image of ``name``."""
        from PIL import Image

        with Image.open(self.samples[name]['img_path']) as im:
            return np.asarray(im.convert('RGB'))


def validation_images(cfg) -> ValidationImages:
    """The images of ``cfg``'s test dataset (the one the evaluation reads; MMSeg's configs test on the
    validation split), listed by MMSeg's dataset class; :class:`npe.errors.DataError` if unreadable."""
    from npe.config import leaf_datasets
    from npe.own_data import build_dataset

    loader = 'test_dataloader' if cfg.get('test_dataloader') else 'val_dataloader'
    samples: dict[str, dict] = {}
    classes: tuple[str, ...] = ()
    for _, leaf in leaf_datasets((cfg.get(loader) or {}).get('dataset'), f'{loader}.dataset'):
        dataset = build_dataset(leaf)
        classes = classes or tuple(dataset.metainfo.get('classes') or ())
        for i in range(min(len(dataset), MAX_SCANNED - len(samples))):
            info = dataset.get_data_info(i)
            samples.setdefault(_key(Path(info['img_path'])), info)
    return ValidationImages(samples, classes)


def pick_images(images: ValidationImages, share: Sequence[float], n: int = NUM_IMAGES) -> list[str]:
    """Names of up to ``n`` validation images where the rarest third of the classes shows most."""
    share = np.asarray(share, dtype=float)
    rare = np.argsort(share, kind='stable')[:max(1, len(share) // 3)]
    scored = []
    for name in sorted(images.samples):
        label = images.label(name)
        counts = np.bincount(label[(label >= 0) & (label < len(share))].ravel(), minlength=len(share))
        present = counts[rare]
        scored.append((-(present > 0).sum(), -int(present.sum()), name))
    return [name for a, b, name in sorted(scored)[:n] if a < 0]


def _png(path: Path, array) -> None:
    """One PNG written whole (temp file + rename): a figure drawn meanwhile never reads half of it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format='PNG')
    write_bytes_atomic(path, buffer.getvalue())


def save(results_dir: Path, recipe, images: ValidationImages, names: Sequence[str],
         rows: dict[str, dict]) -> Path | None:
    """Write the examples of ``rows`` (``{row label: {name: uint8 map}}``) and the images' copies;
    rows saved earlier for the same images (another training job) stay in the index.

    Several drivers, or the tasks of a Slurm job array, save rows of one recipe at the same time: the
    whole update (files, then index read, merged and rewritten) runs under the folder's lock, so no
    process's rows are lost (``tests/test_examples.py``).
    """
    if not names or not rows:
        return None
    out = Path(results_dir) / recipe.name / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        for name in names:
            if name in images.samples:
                _png(out / 'image' / f'{name}.png', images.image(name))
                _png(out / 'gt' / f'{name}.png', images.label(name))
        for label, maps in rows.items():
            target = out / folder_name(label)
            for stale in (set(target.iterdir()) if target.is_dir() else set()) - {
                    target / f'{name}.png' for name in maps}:
                stale.unlink()  # a map of an image no longer picked
            for name, pred in maps.items():
                _png(target / f'{name}.png', pred)
        before = load(results_dir, recipe.name) or {}
        kept = before.get('rows', {}) if before.get('images') == list(names) else {}
        index = dict(images=list(names), rows={**kept, **{label: folder_name(label) for label in rows}},
                     classes=list(images.classes))
        return write_json_atomic(out / 'index.json', index, indent=1)


def load(results_dir: Path, recipe_name: str) -> dict | None:
    """The saved examples: ``{"images": [...], "rows": {label: folder}, "classes": [...], "dir": Path}``."""
    index = Path(results_dir) / recipe_name / FOLDER / 'index.json'
    try:
        data = json.loads(index.read_text())
    except (OSError, ValueError):
        return None
    data['dir'] = index.parent
    return data


def example_rows(recipe, items: list[dict]) -> dict[str, dict]:
    """The rows the examples figure shows: the baseline, and each NPE variant at its chosen s
    (``auto`` when the recipe has it, else its first s); ``{label: {image: map}}``."""
    from npe.recipes import scale_label

    out = {}
    for v in recipe.variants:
        mine = [it for it in items if it['variant'] == v.name and it['row'].get('predictions')]
        if not mine:
            continue
        pick = next((it for it in mine if it['s'] == AUTO), mine[0])
        label = 'baseline' if v.is_baseline else f'{v.name}, s={scale_label(pick["value"])}' + (
            ' (auto)' if pick['s'] == AUTO else '')
        out[label] = pick['row']['predictions']
    return out
