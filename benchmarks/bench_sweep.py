"""What a scale-factor sweep costs: one s, six s one at a time (the old way), six s in one pass.

Evaluates a 1-PEM NPE model of the built-in ``longtail_synth`` recipe on its validation set with
``npe.evaluate``: (a) one s, (b) s in {1, 1.5, 2, 3, 4, 6} with ``per_s=True`` (one full evaluation
per s), (c) the same six values in one pass (npe.sweep). Rounds are interleaved; medians are printed
with the ratios to (a). It also checks that (b) and (c) give the same confusion counts.

    .venv/bin/python benchmarks/bench_sweep.py                 # trains a 20-iteration model first
    .venv/bin/python benchmarks/bench_sweep.py --work-dir work_dirs/longtail_synth/npe1__seed0

Needs the ``longtail_synth`` data (prepared on the fly under the kit's data root). Not a test.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

SIX = [1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def _evaluate(work_dir: Path, out: Path, scales, per_s: bool):
    import npe

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        start = time.perf_counter()
        rows = npe.evaluate(work_dir, scale_factors=scales, per_s=per_s, out_dir=out, record_prior=True)
        return time.perf_counter() - start, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', type=Path, help='a trained longtail_synth NPE work dir '
                                                      '(default: train a 20-iteration one in a temp dir)')
    parser.add_argument('--rounds', type=int, default=3, help='timed rounds of each (default 3)')
    parser.add_argument('--json', type=Path, help='also write the timings here')
    args = parser.parse_args()

    import npe
    from npe import datasets, paths

    tmp = Path(tempfile.mkdtemp(prefix='npe_bench_sweep_'))
    datasets.get('longtail_synth').prepare(paths.data_root())
    work_dir = args.work_dir
    if work_dir is None:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            work_dir = Path(npe.train('npe::longtail_synth_unet.py', num_pem=1, seed=0, protocol='fixed',
                                      work_dir=tmp / 'model',
                                      cfg_options={'train_cfg.max_iters': 20,
                                                   'train_cfg.val_interval': 20,
                                                   'default_hooks.checkpoint.interval': 20})['work_dir'])
    cases = {'one s': ([2.0], False), '6 s, one at a time': (SIX, True), '6 s, one pass': (SIX, False)}
    _evaluate(work_dir, tmp / 'warmup', [2.0], False)  # warm-up: imports, first-batch costs
    times: dict[str, list[float]] = {name: [] for name in cases}
    rows = {}
    for r in range(args.rounds):
        for name, (scales, per_s) in cases.items():
            wall, rows[name] = _evaluate(work_dir, tmp / f'{r}_{len(times[name])}_{per_s}_{len(scales)}',
                                         scales, per_s)
            times[name].append(wall)
            print(f'round {r}: {name}: {wall:.2f} s', flush=True)
    same = all(a['per_class']['confusion'] == b['per_class']['confusion']
               for a, b in zip(rows['6 s, one at a time'], rows['6 s, one pass']))
    base = statistics.median(times['one s'])
    images = rows['one s'][0]['num_images']
    print(f'longtail_synth validation set ({images} images), {args.rounds} rounds, work dir {work_dir}')
    print(f'{"case":<22} {"median s":>9} {"x one s":>8}   all rounds')
    for name, values in times.items():
        med = statistics.median(values)
        print(f'{name:<22} {med:9.2f} {med / base:8.2f}   ' + ' '.join(f'{v:.2f}' for v in values))
    print(f'confusion counts of one pass == one at a time: {same}')
    if args.json:
        args.json.write_text(json.dumps(dict(times=times, images=images, identical=same), indent=1))


if __name__ == '__main__':
    main()
