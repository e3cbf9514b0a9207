"""Inference: load a trained model and predict label maps for images with NPE-LA at a chosen s.

``npe.init_model`` and ``npe.inference`` are the kit's counterparts of ``mmseg.apis.init_model`` /
``inference_model`` (which they use): the model comes from a work dir of ``npe-train`` (its own
config and last checkpoint), an NPE config, or a plain MMSeg config (then there is nothing to
adjust). The adjustment at s is the wrapper head's own (``MultiHeadWrapper.adjust_blocks`` with one
``('npe', s)`` block, the operations ``npe.evaluate`` uses), so a prediction here is the one an
evaluation at the same s scores.
"""
from __future__ import annotations

import copy
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

from npe.arguments import Checker
from npe.config import load_config, register
from npe.errors import ConfigError, DataError, RunError
from npe.logs import RunnerLog
from npe.options import EVALUATED_SCALE

log = logging.getLogger(__name__)

__all__ = ['init_model', 'inference', 'IMAGE_SUFFIXES']

#: Files a folder given to :func:`inference` contributes (case-insensitive).
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def _device(device: Any) -> str:
    """``None`` -> ``'cuda'`` where CUDA works, else ``'cpu'``; ``'cuda'`` without CUDA is an error,
    never a silent fallback to the CPU."""
    import torch

    check = Checker('npe.init_model', ConfigError)
    if device is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    check.text('device', device)
    kind, _, index = str(device).partition(':')
    if kind not in ('cpu', 'cuda') or (index and (kind == 'cpu' or not index.isdigit())):
        raise check.fail('device', "'cpu', 'cuda', 'cuda:N' or None (CUDA where present)", device)
    if kind == 'cuda':
        if not torch.cuda.is_available():
            raise ConfigError(f"npe.init_model: device {device!r}, but no CUDA device works here "
                              "(torch.cuda.is_available() is False); give device='cpu'")
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f'npe.init_model: device {device!r}, but there are only '
                              f'{torch.cuda.device_count()} CUDA device(s); give cuda:0 to '
                              f'cuda:{torch.cuda.device_count() - 1}')
    return str(device)


def _work_dir_files(work_dir: Path, checkpoint: Any) -> tuple[Path, Path]:
    """The config a training run in ``work_dir`` used and its last readable checkpoint."""
    from npe.eval_config import find_run_config
    from npe.work_dir import readable_checkpoint

    try:
        config = find_run_config(work_dir)
    except RunError as exc:   # its fix names npe.evaluate's / npe-test's config argument
        raise RunError(f'npe.init_model: {exc}; here: give the config file as config_or_work_dir and '
                       'checkpoint=') from None
    if checkpoint is not None:
        return config, Path(checkpoint)
    last, bad = readable_checkpoint(work_dir)
    if last is None:
        why = f' ({bad[0][0].name}: {bad[0][1]})' if bad else ''
        raise RunError(f'npe.init_model: no readable checkpoint in {work_dir}{why}; train longer than '
                       'one checkpoint interval, or give checkpoint=')
    return config, last


def _dataset_meta(loaded: Any, cfg: Any) -> dict | None:
    """Class names and palette: from the loaded checkpoint's meta (MMEngine saves them), else the
    dataset class of the config's test set; None when neither has them."""
    meta = loaded.get('meta') if isinstance(loaded, dict) else None
    if isinstance(meta, dict) and meta.get('dataset_meta'):
        return dict(meta['dataset_meta'])
    from mmseg.registry import DATASETS

    kind = ((cfg.get('test_dataloader') or {}).get('dataset') or {}).get('type')
    dataset = DATASETS.get(kind) if isinstance(kind, str) else None
    return dict(dataset.METAINFO) if dataset is not None and getattr(dataset, 'METAINFO', None) else None


def init_model(config_or_work_dir: str | os.PathLike,
               checkpoint: str | os.PathLike | None = None,
               device: str | None = None) -> Any:
    """A segmentation model ready for :func:`inference` (``mmseg.apis.init_model`` for NPE models).

    Args:
        config_or_work_dir: a work dir of ``npe-train`` / ``npe.train`` (its own config and its last
            checkpoint), or a config: a file or an ``mmseg::`` / ``npe::`` name, NPE or plain MMSeg
            (a plain model has no PEMs: its predictions are the main head's).
        checkpoint: the weights; default for a work dir its last checkpoint, for a config none (the
            model keeps its random initial weights, with a warning). Every key is checked: a
            checkpoint that does not fit the config is an error.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'``; None = CUDA where it works, else the CPU.

    Returns:
        The MMSeg segmentor in eval mode, with ``.cfg`` (its config) and ``.dataset_meta``.

    Raises:
        npe.errors.ConfigError: no such config, or it cannot be built; a device that is not there.
        npe.errors.RunError: the work dir has no config or no readable checkpoint; the checkpoint
            cannot be read or does not fit the model.
    """
    check = Checker('npe.init_model', ConfigError)
    check.path('config_or_work_dir', config_or_work_dir)
    Checker('npe.init_model', RunError).path('checkpoint', checkpoint, optional=True)
    device = _device(device)
    source = Path(os.fspath(config_or_work_dir))
    if source.is_dir():
        config_path, ckpt = _work_dir_files(source, checkpoint)
        cfg = load_config(config_path)
    else:
        cfg = load_config(os.fspath(config_or_work_dir))
        ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and not ckpt.is_file():
        raise RunError(f'npe.init_model: checkpoint {ckpt} does not exist; give checkpoint= a .pth file')
    if not (cfg.get('model') or {}).get('decode_head'):
        raise ConfigError(f'npe.init_model: the config {cfg.filename} has no model.decode_head; give a '
                          'segmentation config')
    pipeline = cfg.get('test_pipeline') or ((cfg.get('test_dataloader') or {}).get('dataset') or {}).get('pipeline')
    if not pipeline:
        raise ConfigError(f'npe.init_model: the config {cfg.filename} has no test_pipeline (nor a '
                          'test_dataloader.dataset.pipeline) to prepare images with; add one')
    cfg.test_pipeline = copy.deepcopy(pipeline)

    register()
    from mmseg.apis import init_model as mmseg_init_model

    from npe.checkpoint import allow_mmengine_checkpoints
    from npe.reference import load_weights, read_checkpoint

    allow_mmengine_checkpoints()
    try:
        # quiet: MMSeg's Python warnings (deprecations...) become records of the npe logger
        with RunnerLog(console=False).python_warnings():
            # the weights are loaded below, every key checked (MMSeg's loader skips what does not fit)
            model = mmseg_init_model(cfg, None, device=device)
    except Exception as exc:  # a config MMSeg cannot build: a registry miss, a wrong argument
        raise ConfigError(f'npe.init_model: the model of {cfg.filename} cannot be built: '
                          f'{type(exc).__name__}: {" ".join(str(exc).split())[:300]}') from None
    loaded = None
    if ckpt is None:
        log.warning('npe.init_model: no checkpoint; the model has its random initial weights')
    else:
        loaded = read_checkpoint(ckpt)   # one read: the weights and the class names of its meta
        for note in load_weights(model, ckpt, loaded):
            log.info('%s: %s', ckpt, note)
    model.dataset_meta = _dataset_meta(loaded, cfg)
    model.eval()
    return model


def _images(images: Any) -> tuple[list, bool]:
    """``(items, single)``: the images as a list of paths / arrays, and whether one was given alone."""
    import numpy as np

    check = Checker('npe.inference', DataError)
    if isinstance(images, np.ndarray):
        if images.ndim not in (2, 3) or images.size == 0:
            raise check.fail('images', 'an H x W (x C) image array (BGR, as mmcv reads it)', images)
        return [images], True
    if isinstance(images, (str, os.PathLike)):
        check.path('images', images)
        path = Path(images)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DataError(f'npe.inference: folder {path} holds no image ({", ".join(IMAGE_SUFFIXES)})')
            return [str(p) for p in files], False
        if not path.is_file():
            raise DataError(f'npe.inference: image {path} does not exist; give an image file, a folder '
                            'of images, or a list of them')
        return [str(path)], True
    if isinstance(images, Sequence) and images and not isinstance(images, (str, bytes)):
        items = []
        for item in images:
            more, _ = _images(item)
            if len(more) != 1 or isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
                raise check.fail('images item', 'an image file or array (a folder only on its own)', item)
            items += more
        return items, False
    raise check.fail('images', 'an image file, a folder of images, an image array, or a list of '
                     'files / arrays', images)


def _scale(model: Any, scale_factor: Any) -> tuple[Any, float | None]:
    """``(head, s)``: the NPE wrapper head (None for a plain model) and the s to apply (None: none)."""
    from npe.models.wrapper import MultiHeadWrapper

    check = Checker('npe.inference', ConfigError)
    head = getattr(model, 'decode_head', None)
    if head is None or not hasattr(model, 'cfg'):
        raise check.fail('model', 'a model made by npe.init_model', model)
    check.real('scale_factor', scale_factor, f'{EVALUATED_SCALE.expected} or None', optional=True)
    if scale_factor is not None:
        EVALUATED_SCALE.check(float(scale_factor))
    if not isinstance(head, MultiHeadWrapper):
        if scale_factor is not None and not math.isinf(scale_factor):
            raise ConfigError(f'npe.inference: scale_factor={scale_factor!r}, but the model is a plain MMSeg '
                              f'model ({type(head).__name__}, no prior estimator modules); give '
                              'scale_factor=None')
        return None, None
    return head, float(head.scale_factor if scale_factor is None else scale_factor)


def inference(model: Any, images: Any, scale_factor: float | None = None) -> Any:
    """Predict label maps with NPE-LA at s: ``mmseg.apis.inference_model`` for NPE models.

    Args:
        model: a model from :func:`init_model`.
        images: an image file, a folder (its image files, sorted by name), an image array (H x W x C,
            BGR, as ``mmcv.imread`` gives it), or a list of files / arrays.
        scale_factor: s of NPE-LA, ``z + mean_m(U_m - mean U_m) / s``; None = the s stored in the
            model's config (what ``npe.evaluate`` uses by default); ``float('inf')`` = no adjustment
            (the main head alone). A plain MMSeg model takes only None or inf.

    Returns:
        MMSeg's ``SegDataSample`` (``.pred_sem_seg.data``: the label map, 1 x H x W;
        ``.seg_logits``: the adjusted logits) for one image, a list of them for a folder or a list;
        each carries ``npe_scale_factor`` (the s applied, None for a plain model) in its metainfo.

    Raises:
        npe.errors.DataError: an image or folder that is not there or holds no image.
        npe.errors.ConfigError: a scale factor that is not a number > 0 (or inf), or one given
            to a plain model.
    """
    from mmseg.apis import inference_model

    head, s = _scale(model, scale_factor)
    items, single = _images(images)
    pipeline = copy.deepcopy(model.cfg.test_pipeline)
    if head is not None:
        head.eval_blocks = [('npe', s)]   # one block: exactly adjust() at s, as npe.evaluate applies it
    results = []
    try:
        with RunnerLog(console=False).python_warnings():   # MMSeg's warnings: npe log records
            for item in items:
                # MMSeg edits the config's pipeline in place (LoadImageFromNDArray for an array)
                model.cfg.test_pipeline = copy.deepcopy(pipeline)
                sample = inference_model(model, item)
                sample.set_metainfo({'npe_scale_factor': s})
                results.append(sample)
    finally:
        if head is not None:
            head.eval_blocks = None
        model.cfg.test_pipeline = pipeline
    return results[0] if single else results
