"""Recipes over a dataset of one's own (``npe.own_data``): the recipe's ``dataset:`` mapping, the
held-out fraction left out of training, the counted shares of the training split and their cache,
clear errors for missing data, and one end-to-end ``npe-repro`` run with tables, figures and
``--compare``."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from own_dataset import CLASSES, write_own_dataset
from PIL import Image

from npe.errors import DataError, RecipeError
from npe.recipes import load_recipe, scale_label

BIN = Path(sys.executable).parent

RECIPE = '''name: {name}
title: "Own dataset: baseline vs NPE"
dataset:
  config: data/own_set.py
  data_root: data
{holdout}base_config: npe::smoke_unet.py
protocol: upstream
metrics: [mIoU, mAcc]
seeds: [0]
max_iters: 6
{auto}variants:
  - {{name: baseline, num_pem: 0}}
  - {{name: npe1, num_pem: 1, scale_factors: [1, {s}]}}
'''


def write_recipe(folder: Path, name: str = 'own', holdout: str = '  holdout_fraction: 0.25\n',
                 auto: bool = True) -> Path:
    text = RECIPE.format(name=name, holdout=holdout, s='auto' if auto else 2,
                         auto='auto_scale: {metric: mIoU, candidates: [1, 2]}\n' if auto else '')
    path = folder / f'{name}.yaml'
    path.write_text(text)
    return path


@pytest.fixture
def own(tmp_path) -> Path:
    """A folder with the own dataset under ``data/`` and the recipe ``own.yaml``."""
    write_own_dataset(tmp_path / 'data')
    write_recipe(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------- the recipe
def test_recipe_takes_a_dataset_config_and_data_root(own):
    recipe = load_recipe(own / 'own.yaml')
    assert recipe.dataset == 'own_set' and recipe.own_data is not None
    assert recipe.own_data.data_root == (own / 'data').resolve()
    assert recipe.own_data.holdout_fraction == 0.25 and recipe.auto_scale is not None


@pytest.mark.parametrize('holdout, auto, expected', [
    ('  holdout_fraction: 1.5\n', True, 'dataset: holdout_fraction: expected null or a number between 0 and 1'),
    ('  holdout_fraction: 0.2\n  holdout_split: {img_path: a, seg_map_path: b}\n', True,
     'dataset: give holdout_split or holdout_fraction, not both'),
    ('  holdout_split: {img_path: a}\n', True, 'dataset: holdout_split.seg_map_path: missing key'),
    ('  hold_out: 0.2\n', True, 'dataset: hold_out: unknown key (allowed: config, data_root'),
    ('', True, 'auto_scale: dataset \'own_set\' has no held-out training split to choose s on'),
])
def test_bad_dataset_mapping_is_one_line(own, holdout, auto, expected):
    write_recipe(own, 'bad', holdout=holdout, auto=auto)
    with pytest.raises(RecipeError) as exc:
        load_recipe(own / 'bad.yaml')
    assert expected in str(exc.value) and '\n' not in str(exc.value)


def test_missing_dataset_config_and_data_root_are_one_line(own):
    (own / 'data' / 'own_set.py').rename(own / 'elsewhere.py')
    with pytest.raises(RecipeError, match=r"own.yaml: dataset.config: 'data/own_set.py' not found"):
        load_recipe(own / 'own.yaml')
    (own / 'elsewhere.py').rename(own / 'data' / 'own_set.py')
    shutil.move(own / 'data', own / 'moved')
    (own / 'data').mkdir()
    (own / 'moved' / 'own_set.py').rename(own / 'data' / 'own_set.py')
    shutil.rmtree(own / 'moved')
    (own / 'data' / 'own_set.py').rename(own / 'cfg.py')
    shutil.rmtree(own / 'data')
    (own / 'own.yaml').write_text((own / 'own.yaml').read_text().replace('data/own_set.py', 'cfg.py'))
    proc = subprocess.run([str(BIN / 'npe-repro'), str(own / 'own.yaml'), '--results-dir', str(own / 'r'),
                           '--work-dir', str(own / 'w')], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f'error: dataset data root {own / "data"} does not exist; put the data there or fix '
                     "the recipe's dataset.data_root (relative to the recipe file)"], lines
    assert not (own / 'r').exists()


# --------------------------------------------------------------------------- held-out part and counts
def _train_config(own: Path):
    from npe.jobs import job_train_config, plan_runs

    recipe = load_recipe(own / 'own.yaml')
    job = plan_runs(recipe, work_root=own / 'work')[0]
    return recipe, job_train_config(recipe, job, own / 'kitdata', None, quiet=True)


def _counted_by_hand(files: list[Path]) -> np.ndarray:
    counts = np.zeros(len(CLASSES), dtype=np.int64)
    for f in files:
        label = np.asarray(Image.open(f))
        counts += np.array([(label == k).sum() for k in range(len(CLASSES))])
    return counts


def test_held_out_fraction_is_left_out_of_training_and_of_the_counts(own, caplog):
    from npe.own_data import class_pixel_counts, held_out_indices

    recipe, cfg = _train_config(own)
    train = cfg.train_dataloader.dataset
    assert train.type == 'BaseSegDataset' and train.data_root == str((own / 'data').resolve())
    assert cfg.model.decode_head.main_head.num_classes == len(CLASSES)
    held, kept = list(cfg.npe_holdout['indices']), list(train['indices'])
    assert held == held_out_indices(8, 0.25) and len(held) == 2   # fixed seed: the same every run
    assert sorted(held + kept) == list(range(8)) and not set(held) & set(kept)
    masks = sorted((own / 'data' / 'masks' / 'train').glob('*_mask.png'))
    with caplog.at_level(logging.INFO, logger='npe.own_data'):
        counts = class_pixel_counts(cfg)
    assert counts.tolist() == _counted_by_hand([masks[i] for i in kept]).tolist()
    assert 'counted class pixels in 6/6 label files' in caplog.text
    cache = json.loads((own / 'data' / '.npe-class-counts.json').read_text())
    assert [entry['counts'] for entry in cache.values()] == [counts.tolist()]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger='npe.own_data'):
        assert class_pixel_counts(cfg).tolist() == counts.tolist()
    assert 'from' in caplog.text and 'counted class pixels' not in caplog.text   # the cache answered
    # a relabelled training mask changes the file list's checksum: counted again
    label = np.asarray(Image.open(masks[kept[0]])).copy()
    label[:] = 2
    Image.fromarray(label).save(masks[kept[0]])
    assert class_pixel_counts(cfg).tolist() == _counted_by_hand([masks[i] for i in kept]).tolist()


def test_held_out_split_folder(own):
    from npe.eval_config import _test_split

    holdout = '  holdout_split: {img_path: pics/val, seg_map_path: masks/val}\n'
    write_recipe(own, 'own', holdout=holdout)
    _, cfg = _train_config(own)
    assert 'indices' not in cfg.train_dataloader.dataset
    assert cfg.npe_holdout['data_prefix'] == dict(img_path='pics/val', seg_map_path='masks/val')
    _test_split(cfg, 'holdout')
    assert cfg.test_dataloader.dataset.data_prefix == dict(img_path='pics/val', seg_map_path='masks/val')
    assert cfg.test_dataloader.dataset.img_suffix == '_rgb.png'


def test_unreadable_data_is_one_line(own):
    from npe.own_data import class_pixel_counts

    _, cfg = _train_config(own)
    shutil.rmtree(own / 'data' / 'masks' / 'train')
    with pytest.raises(DataError, match='label files are missing, e.g. .*train000_mask.png; check seg_map_path'):
        class_pixel_counts(cfg)


def test_examples_read_the_own_validation_split_through_mmseg(own):
    """The examples figure's images: the own set's validation split in its own layout (suffixes,
    class names), read through MMSeg's dataset class; the images picked show the rare class."""
    from npe import examples

    _, cfg = _train_config(own)
    images = examples.validation_images(cfg)
    assert sorted(images.samples) == [f'val{i:03d}_rgb' for i in range(4)] and images.classes == CLASSES
    mask = np.asarray(Image.open(own / 'data' / 'masks' / 'val' / 'val001_mask.png'))
    assert images.label('val001_rgb').tolist() == mask.tolist()
    assert images.image('val001_rgb').shape == mask.shape + (3,)
    picked = examples.pick_images(images, [0.5, 0.45, 0.05], n=2)
    assert len(picked) == 2 and all((images.label(n) == 2).any() for n in picked)


# --------------------------------------------------------------------------- end to end
def repro(own: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / 'npe-repro'), str(own / 'own.yaml'), '--results-dir', str(own / 'results'),
                           '--work-dir', str(own / 'work'), *args], capture_output=True, text=True,
                          timeout=900, cwd=own)


@pytest.mark.integration
def test_own_dataset_recipe_end_to_end(own):
    """The acceptance run: npe-repro over the own dataset writes every result file, the tables and
    figures; a copy of the results passes --compare, a moved metric fails it."""
    proc = repro(own)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    recipe = load_recipe(own / 'own.yaml')
    folder = own / 'results' / 'own'
    names = sorted(p.name for p in folder.glob('*.json'))
    assert len(names) == len(recipe.expected_results()) == 8, names
    auto = json.loads((folder / 'npe1__seed0__sauto.json').read_text())
    assert auto['status'] == 'ok' and auto['dataset'] == 'own_set'
    assert auto['auto_scale']['split'] == 'holdout' and set(auto['auto_scale']['candidates']) == {'1', '2'}
    assert auto['per_class']['classes'] == list(CLASSES)
    counts = json.loads((own / 'data' / '.npe-class-counts.json').read_text())
    (entry,) = counts.values()
    assert entry['files'] == 6   # the two held-out images are not counted
    assert np.allclose(auto['class_pixel_share'], np.array(entry['counts']) / sum(entry['counts']))
    tables = own / 'results' / 'tables'
    assert '| counted_la' in (tables / 'own.md').read_text()
    assert sorted(p.name for p in tables.glob('own_*.png')) == ['own_examples.png', 'own_loss.png',
                                                                 'own_per_class_iou.png', 'own_prior.png']
    index = json.loads((folder / 'examples' / 'index.json').read_text())   # the qualitative figure's data
    assert index['classes'] == list(CLASSES) and index['images'], index
    assert set(index['images']) <= {f'val{i:03d}_rgb' for i in range(4)}
    assert sorted(index['rows'], key=len) == ['baseline', f"npe1, s={scale_label(auto['scale_factor_value'])} (auto)"], index
    for name in index['images']:   # the ground truth copied from the own layout (masks/val/<name>_mask.png)
        mask = np.asarray(Image.open(own / 'data' / 'masks' / 'val' / f'{name[:-4]}_mask.png'))
        assert np.asarray(Image.open(folder / 'examples' / 'gt' / f'{name}.png')).tolist() == mask.tolist()
        for sub in index['rows'].values():
            assert (folder / 'examples' / sub / f'{name}.png').is_file()
    shutil.copytree(own / 'results', own / 'copy')
    same = repro(own, '--compare', str(own / 'copy'))
    assert same.returncode == 0, same.stdout[-3000:] + same.stderr[-3000:]
    moved = own / 'copy' / 'own' / 'baseline__seed0__s1.json'
    data = json.loads(moved.read_text())
    data['metrics']['mIoU'] += 10
    moved.write_text(json.dumps(data))
    differs = repro(own, '--compare', str(own / 'copy'))
    assert differs.returncode == 1 and 'baseline' in differs.stdout + differs.stderr
