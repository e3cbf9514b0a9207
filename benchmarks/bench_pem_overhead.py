"""What prior estimator modules cost: seconds per training iteration and per inference image on CPU.

Model: MMSeg's UNet STARE config (``mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py``, SyncBN
reverted to BN as MMEngine does on one process), made an NPE model with :func:`npe.apply_npe` for
each variant:

- ``baseline``: the wrapper with ``num_pem=0`` (the original FCN head, no auxiliary head, no PEM) -
  every ratio is relative to this row;
- ``1 PEM auto``, ``1 PEM FCNHead``, ``2 PEMs auto``;
- ``mmseg original`` (with ``--with-original``): the unmodified config, auxiliary head included.

Training iteration = ``model.train_step`` with the config's own optimizer wrapper (SGD, the
protocol's parameter groups): data preprocessing, forward, all losses, backward, optimizer step, on a
fixed random batch of ``--batch-size`` uint8 images of ``--crop`` x ``--crop`` pixels with random
0/1 labels (no data loading, so the model's cost is measured alone). Inference = ``model.test_step``
on one image of the crop size (the config's sliding window covers it in one window), eval mode, no
gradients, NPE-LA adjustment included. Variants are timed round-robin (one step of each variant
per round) so that load from other processes on the machine hits all of them alike; the table shows
medians over rounds.

Run: ``.venv/bin/python benchmarks/bench_pem_overhead.py`` (about 2-3 minutes on 2 busy cores);
``--help`` for the repeats and sizes.
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

CONFIG = 'mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py'
VARIANTS: list[tuple[str, dict[str, Any] | None]] = [
    ('baseline (0 PEM)', dict(num_pem=0)),
    ('1 PEM auto', dict(num_pem=1, pem_type='auto')),
    ('1 PEM FCNHead', dict(num_pem=1, pem_type='FCNHead')),
    ('2 PEMs auto', dict(num_pem=2, pem_type='auto')),
]
ORIGINAL = ('mmseg original', None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--train-repeats', type=int, default=10, help='timed training rounds (default 10)')
    p.add_argument('--infer-repeats', type=int, default=30,
                   help='timed inference rounds (default 30)')
    p.add_argument('--warmup', type=int, default=2, help='untimed rounds first (default 2)')
    p.add_argument('--batch-size', type=int, default=4, help='training batch (default 4)')
    p.add_argument('--crop', type=int, default=128, help='image side in pixels (default 128)')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s)')
    p.add_argument('--with-original', action='store_true',
                   help='also time the unmodified MMSeg config (auxiliary head included)')
    p.add_argument('--json', metavar='FILE', help='also write the numbers as JSON')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def build(options: dict[str, Any] | None):
    """(model, optim_wrapper) of one variant, in train mode, on CPU."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import npe
    from npe.config import load_base_config

    npe.register()
    init_default_scope('mmseg')
    cfg = load_base_config(CONFIG)
    if options is not None:
        # protocol 'fixed': same compute as 'upstream', without its warning lines
        cfg = npe.apply_npe(cfg, protocol='fixed', **options)
    model = revert_sync_batchnorm(MODELS.build(copy.deepcopy(cfg.model)))
    optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    model.train()
    return model, optim


def make_batch(n: int, size: int, num_classes: int, with_labels: bool) -> dict:
    """Model input as a dataloader would give it: uint8 CHW images and SegDataSamples."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, size, size), dtype=torch.uint8))
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size),
                                 pad_shape=(size, size), scale_factor=(1.0, 1.0)))
        if with_labels:
            label = torch.randint(0, num_classes, (1, size, size), dtype=torch.int64)
            sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import warnings

    warnings.filterwarnings('ignore')  # MMSeg's deprecation chatter; the table is the output
    import logging

    import torch
    from mmengine.logging import MMLogger

    # the optimizer constructor logs every parameter group at INFO
    MMLogger.get_current_instance().setLevel(logging.WARNING)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    variants = VARIANTS + ([ORIGINAL] if args.with_original else [])
    models = {}
    for name, options in variants:
        model, optim = build(options)
        params = sum(p.numel() for p in model.parameters())
        models[name] = (model, optim, params)
    num_classes = 2
    train_batch = make_batch(args.batch_size, args.crop, num_classes, with_labels=True)
    infer_batch = make_batch(1, args.crop, num_classes, with_labels=False)

    train_times: dict[str, list[float]] = {name: [] for name, _ in variants}
    infer_times: dict[str, list[float]] = {name: [] for name, _ in variants}
    start = time.perf_counter()
    for round_ in range(args.warmup + args.train_repeats):
        for name, _ in variants:
            model, optim, _ = models[name]
            model.train()
            t = timed(lambda: model.train_step(copy.copy(train_batch), optim))
            if round_ >= args.warmup:
                train_times[name].append(t)
    with torch.no_grad():
        for name, _ in variants:
            models[name][0].eval()
        for round_ in range(args.warmup + args.infer_repeats):
            for name, _ in variants:
                model = models[name][0]
                t = timed(lambda: model.test_step(copy.copy(infer_batch)))
                if round_ >= args.warmup:
                    infer_times[name].append(t)
    total = time.perf_counter() - start

    base = variants[0][0]
    base_train = statistics.median(train_times[base])
    base_infer = statistics.median(infer_times[base])
    rows = []
    for name, _ in variants:
        tr, inf = statistics.median(train_times[name]), statistics.median(infer_times[name])
        rows.append(dict(variant=name, params_m=models[name][2] / 1e6, train_s_per_iter=tr,
                         train_ratio=tr / base_train, infer_s_per_image=inf,
                         infer_ratio=inf / base_infer))

    print(f'# PEM overhead, UNet STARE config, CPU, batch {args.batch_size} x 3 x {args.crop} x '
          f'{args.crop} (train), 1 image (inference)')
    print(f'# torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, '
          f'{cpu_name()}; medians of {args.train_repeats} train / '
          f'{args.infer_repeats} inference rounds after {args.warmup} warm-up; {total:.0f} s timed')
    print()
    print('| variant | params (M) | train s/iter | x baseline | inference s/image | x baseline |')
    print('|---|---:|---:|---:|---:|---:|')
    for r in rows:
        print(f'| {r["variant"]} | {r["params_m"]:.2f} | {r["train_s_per_iter"]:.3f} | '
              f'{r["train_ratio"]:.2f} | {r["infer_s_per_image"]:.3f} | {r["infer_ratio"]:.2f} |')
    if args.json:
        payload = dict(config=CONFIG, batch_size=args.batch_size, crop=args.crop,
                       threads=torch.get_num_threads(), torch=torch.__version__,
                       created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'),
                       rows=rows, raw=dict(train=train_times, inference=infer_times))
        tmp = f'{args.json}.tmp'
        with open(tmp, 'w') as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
