"""What a recipe will cost before it runs (``npe-repro RECIPE --dry-run``): training time on the
detected device and disk for the data and the work dirs. Every figure is an estimate and says so.

Time per training iteration:

- CPU: the recipe's ``seconds_per_iteration`` where it sets one (measured on 2 CPU cores); else the
  model's operations (forward FLOPs counted on PyTorch's ``meta`` device, no weights and no compute,
  x 3 for forward + backward, x the total batch) at :data:`CPU_FLOPS`, a rate measured on 2 cores;
- GPU: the same operations at :data:`GPU_FLOPS` per GPU, a stated figure (no GPU run of the kit yet),
  at least :data:`GPU_MIN_SECONDS` (a small model is bound by overheads, not arithmetic).

Disk: checkpoints kept x (weights + SGD momentum, 4 bytes each) per training; the data folder's size
when it is prepared, else :data:`STATED_DATA` (downloads) or the generated images' raw size.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

#: Training arithmetic rate of a 2-core CPU, FLOP/s: the kit's small UNet (``longtail_synth_long``,
#: 0.125 s per iteration of 16 images of 64x64, 0.3 GFLOPs forward each) and UNet-S5-D16 (about 11 s
#: per iteration of 16 images of 128x128, 26.5 GFLOPs forward, CPU time on a loaded machine on
#: 2026-12-06) both come to about 115 GFLOP/s.
CPU_FLOPS = 115e9
#: Stated rate of one A100/H100-class GPU on these convolutional models (TF32), FLOP/s: consistent
#: with the cost table of docs/user-guide.md; not measured (no GPU run of the kit has been made).
GPU_FLOPS = 25e12
GPU_MIN_SECONDS = 0.1
#: Download and prepared sizes (bytes) of the datasets fetched from the network, stated (ADE20K's zip
#: is 923 MB; the STARE tars hold 20 gzip'd 700x605 PPM images and their labels).
STATED_DATA = {'ade20k': (923e6, 1.0e9), 'stare': (15e6, 15e6)}


@dataclass
class ModelCost:
    """Of one training configuration: parameters, and forward FLOPs of one image at the crop size."""

    params: int
    trainable: int
    forward_flops: float


@lru_cache(maxsize=None)
def _model_cost(model_text: str, height: int, width: int) -> ModelCost:
    """Count on the ``meta`` device (instant: no memory, no arithmetic); cached per model config."""
    import torch
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from torch.utils.flop_counter import FlopCounterMode

    from npe.config import register

    register()
    init_default_scope('mmseg')
    import mmseg.models  # noqa: F401 - registers MMSeg's models
    from mmseg.registry import MODELS

    with torch.device('meta'):
        model = MODELS.build(ConfigDict(eval(model_text)))  # noqa: S307 - our own repr of a ConfigDict
        model.eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model.decode_head.forward(model.extract_feat(torch.empty(1, 3, height, width)))
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelCost(params, trainable, float(counter.get_total_flops()))


def model_cost(cfg) -> ModelCost | None:
    """The :class:`ModelCost` of a training config, or None when the model cannot be counted."""
    size = (cfg.model.get('data_preprocessor') or {}).get('size') or (512, 512)
    try:
        return _model_cost(repr(cfg.model.to_dict()), int(size[0]), int(size[1]))
    except Exception as exc:  # an exotic model: the plan is still printed, without this estimate
        log.debug('cannot count the model: %s', exc)
        return None


def device() -> tuple[str, int]:
    """``('cuda', n GPUs)`` or ``('cpu', cores)`` of this machine."""
    import torch

    if torch.cuda.is_available():
        return 'cuda', torch.cuda.device_count()
    return 'cpu', len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)


def _size(n: float) -> str:
    for unit, scale in (('GB', 1e9), ('MB', 1e6)):
        if n >= scale or unit == 'MB':
            return f'{n / scale:.1f} {unit}' if n < 10 * scale else f'{n / scale:.0f} {unit}'
    return f'{n:.0f} B'


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob('*') if p.is_file())


def _kept_checkpoints(cfg, iters: int) -> int:
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    interval = int(hook.get('interval', iters) or iters)
    saved = -(-iters // interval) if interval > 0 else 1   # every interval and the last iteration
    keep = hook.get('max_keep_ckpts')
    return min(saved, keep) if keep and keep > 0 else saved


def describe_cost(recipe, cfg, runs: int, data_root: Path, gpus: int = 0) -> list[str]:
    """The dry-run's estimate lines: time per recipe on the detected device, disk for data and work dirs."""
    from npe import datasets
    from npe.hooks import duration_text

    iters = int(cfg.train_cfg.max_iters)
    batch = int(cfg.npe.distributed['total_batch'])
    kind, count = device()
    cost = model_cost(cfg)
    lines: list[str] = []
    if kind == 'cpu':
        where = f'this machine, CPU with {count} cores'
        if recipe.seconds_per_iteration:
            per, basis = recipe.seconds_per_iteration, "the recipe's seconds_per_iteration, measured on 2 CPU cores"
        elif cost is not None:
            per = cost.forward_flops * 3 * batch / CPU_FLOPS
            basis = (f'{cost.forward_flops / 1e9:.1f} GFLOPs forward per image x 3 x {batch} images at '
                     f'{CPU_FLOPS / 1e9:.0f} GFLOP/s, the rate measured on 2 CPU cores')
        else:
            per = None
    else:
        n = max(1, min(gpus or 1, count))
        where = f'this machine, {count} CUDA GPUs ({n} used)'
        per = None if cost is None else max(GPU_MIN_SECONDS, cost.forward_flops * 3 * batch / (GPU_FLOPS * n))
        basis = f'stated {GPU_FLOPS / 1e12:.0f} TFLOP/s per GPU, not measured'
    lines.append(f'  estimate for {where} (an ESTIMATE, not a measurement):')
    if per is None:
        lines.append('    training: no time estimate (the model could not be counted)')
    else:
        lines += [f'    training: about {duration_text(runs * iters * per)} = {runs} runs x {iters} iterations x '
                  f'{per:.3g} s,', f'      from {basis};',
                  '      plus one holdout and one validation pass per run']
    spec = datasets.get(recipe.dataset)
    folder = spec.path(data_root)
    if spec.is_prepared(data_root):
        data = f'{_size(_folder_bytes(folder))} in {folder} (prepared, measured)'
    elif spec.name in STATED_DATA:
        download, prepared = STATED_DATA[spec.name]
        data = f'about {_size(download)} download + {_size(prepared)} prepared (stated)'
    else:
        synth = getattr(spec, 'config', None)
        raw = sum(n for _, n in synth.counts) * synth.image_size ** 2 * 4 if synth else 0
        data = f'at most {_size(raw)} generated (raw image size)'
    if cost is not None:
        per_ckpt = 4 * (cost.params + cost.trainable)   # float32 weights + SGD momentum of the trained ones
        kept = _kept_checkpoints(cfg, iters)
        work = (f'about {_size(runs * kept * per_ckpt)} = {runs} runs x {kept} checkpoints x '
                f'{_size(per_ckpt)} ({cost.params / 1e6:.1f}M parameters)')
        if recipe.load_from:
            work += f'; initial checkpoint about {_size(4 * cost.params)}'
    else:
        work = 'unknown (the model could not be counted)'
    lines += [f'    disk: data {data}', f'          work dirs {work}']
    return lines
