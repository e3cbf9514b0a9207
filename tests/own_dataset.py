"""A small dataset of one's own, in a layout the kit's built-in sets do not use, for the own-dataset tests.

``pics/<split>/<name>_rgb.png`` + ``masks/<split>/<name>_mask.png`` (MMSeg's ``BaseSegDataset`` with
its own suffixes and class names sky / grass / rock, rock rare, a few ignored pixels), 48x48 images,
and the MMSeg dataset config that reads it (``own_set.py``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ('sky', 'grass', 'rock')

DATASET_CONFIG = '''
dataset_type = 'BaseSegDataset'
metainfo = dict(classes=('sky', 'grass', 'rock'), palette=[[80, 150, 240], [40, 170, 60], [120, 110, 100]])
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                  dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
common = dict(type=dataset_type, metainfo=metainfo, img_suffix='_rgb.png', seg_map_suffix='_mask.png')
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=dict(**common, data_root='somewhere/else', pipeline=train_pipeline,
                                     data_prefix=dict(img_path='pics/train', seg_map_path='masks/train')))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(**common, data_root='somewhere/else', pipeline=test_pipeline,
                                   data_prefix=dict(img_path='pics/val', seg_map_path='masks/val')))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
'''


def write_own_dataset(root: Path, n_train: int = 8, n_val: int = 4, size: int = 48, seed: int = 0) -> Path:
    """Write the images, labels and ``own_set.py`` under ``root``; return ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = np.array([[80, 150, 240], [40, 170, 60], [120, 110, 100]], dtype=np.float64)
    for split, count in (('train', n_train), ('val', n_val)):
        (root / 'pics' / split).mkdir(parents=True, exist_ok=True)
        (root / 'masks' / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            label = np.zeros((size, size), np.uint8)
            horizon = int(rng.integers(size // 3, 2 * size // 3))
            label[horizon:] = 1
            cy, cx, r = int(rng.integers(horizon, size)), int(rng.integers(0, size)), int(rng.integers(3, 7))
            yy, xx = np.mgrid[:size, :size]
            label[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 2
            label[horizon, : size // 4] = 255   # an ignored seam
            image = colours[np.minimum(label, 2)] + rng.normal(0, 10, (size, size, 3))
            name = f'{split}{i:03d}'
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / 'pics' / split / f'{name}_rgb.png')
            Image.fromarray(label).save(root / 'masks' / split / f'{name}_mask.png')
    (root / 'own_set.py').write_text(DATASET_CONFIG)
    return root
