"""The examples folder under concurrent writers: drivers (or Slurm array tasks) saving rows of one
recipe at the same time keep every row (a real race between real processes)."""
from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from npe import examples

NAMES = ['a', 'b', 'c']


def _images(root: Path) -> examples.ValidationImages:
    """The validation images of the dataset :func:`_dataset` writes, as examples.save reads them."""
    return examples.ValidationImages(
        {n: dict(img_path=str(root / 'images' / 'val' / f'{n}.png'), reduce_zero_label=False, label_map=None,
                 seg_map_path=str(root / 'annotations' / 'val' / f'{n}.png')) for n in NAMES}, ('bg', 'rare'))


def _dataset(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ('images', 'annotations'):
        (root / sub / 'val').mkdir(parents=True)
        for name in NAMES:
            shape = (64, 64, 3) if sub == 'images' else (64, 64)
            Image.fromarray(rng.integers(0, 2, shape).astype(np.uint8)).save(root / sub / 'val' / f'{name}.png')


def _save(barrier, results: str, data: str, label: str) -> None:
    rows = {label: {n: np.full((64, 64), i % 2, np.uint8) for i, n in enumerate(NAMES)}}
    barrier.wait()
    examples.save(Path(results), SimpleNamespace(name='r'), _images(Path(data)), NAMES, rows)


def test_rows_saved_at_the_same_time_by_two_processes_are_all_kept(tmp_path):
    _dataset(tmp_path / 'data')
    ctx = mp.get_context('fork')
    lost = []
    for round_ in range(12):
        results = tmp_path / f'results{round_}'
        barrier = ctx.Barrier(2)
        procs = [ctx.Process(target=_save, args=(barrier, str(results), str(tmp_path / 'data'), label))
                 for label in ('baseline', 'npe1, s=2 (auto)')]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0]
        index = json.loads((results / 'r' / examples.FOLDER / 'index.json').read_text())
        if sorted(index['rows']) != ['baseline', 'npe1, s=2 (auto)']:
            lost.append((round_, sorted(index['rows'])))
        for folder in index['rows'].values():
            assert sorted(p.name for p in (results / 'r' / examples.FOLDER / folder).iterdir()) == \
                [f'{n}.png' for n in NAMES]
    assert not lost, f'rows lost by concurrent saves: {lost}'


def test_row_folders_have_safe_names(tmp_path):
    """A row's label stays what the figure shows; its folder has no comma, space or bracket."""
    assert examples.folder_name('npe1, s=2 (auto)') == 'npe1__s2_auto'
    assert examples.folder_name('npe2, s=1.5') == 'npe2__s1.5'
    assert examples.folder_name('baseline') == 'baseline'
    root = Path(__file__).resolve().parents[1] / 'results'
    for index in root.glob('*/examples/index.json'):   # the committed ones too
        rows = json.loads(index.read_text())['rows']
        for label, folder in rows.items():
            assert folder == examples.folder_name(label) and (index.parent / folder).is_dir(), (index, label)
    assert not [p for p in root.rglob('*') if any(c in p.name for c in ', ()=')]
