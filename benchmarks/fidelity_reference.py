#!/usr/bin/env python3
"""Record the reference NPE code's own numbers on this machine: a yardstick for `upstream` here.

Float results depend on the CPU's kernels (docs/environment.md). On a CPU other than the one that
wrote ``reference_losses.json``, the reference code's own 0-PEM curve leaves that file within a few
iterations, so "the kit trains like the reference, bit for bit" can only be checked against the
reference code run on the same kind of machine. This script runs a checkout of the reference code
(its ``segmentation/tools/train.py`` and ``test.py``, unchanged, as separate processes: nothing of it
is imported or copied) with the fixture's command line, every iteration logged, and writes
``benchmarks/fidelity_fixture/machines/<name>.json``:

- ``runs``: the loss terms of iterations 1..``--curve-iters`` per seed and number of PEMs, in the
  layout of ``reference_losses.json``;
- ``results``: per seed, the validation mIoU its ``test.py`` prints for the rows it can compute
  (``baseline_main``, ``npe_s1``, ``npe_s2``, ``npe_main_only`` at s = 1e6);
- ``weights``: per run, a sha256 over the trained weights (:func:`fidelity_machine.weights_digest`): equal
  digests mean equal models, and so equal numbers for every row any evaluation computes from them;
- ``machine`` and ``stack``: where and with what it ran, and the reference code's commit.

    python benchmarks/fidelity_reference.py --reference-code ~/neural-prior-estimator --name amd-epyc-avx2

Finished trainings in ``--work`` are reused (delete the folder to start over). Six trainings of 1,600
iterations: about 25 minutes on 2 idle cores.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import fidelity
import fidelity_machine as machine

ROOT = fidelity.ROOT
#: reference test.py's scale factor per row (1e6: the adjustment vanishes, the main head alone)
ROWS = {0: {'baseline_main': 1.0}, 1: {'npe_s1': 1.0, 'npe_s2': 2.0, 'npe_main_only': fidelity.MAIN_ONLY_S}}


def _reference_commit(code: Path) -> str | None:
    proc = subprocess.run(['git', '-C', str(code), 'rev-parse', 'HEAD'], capture_output=True, text=True)
    if proc.returncode != 0:   # not a git checkout (e.g. an unpacked archive): the commit is unknown
        return None
    return proc.stdout.strip() or None


def _data_roots(data: Path) -> list[str]:
    # The reference's config reads its data root from a variable baked into the dataset dicts.
    return [f'{loader}.dataset.data_root={data}' for loader in ('train_dataloader', 'val_dataloader',
                                                                 'test_dataloader')]


def train(code: Path, config: Path, data: Path, work: Path, num_pem: int, seed: int) -> Path:
    """One 1,600-iteration training by the reference's ``train.py``, every iteration logged."""
    if not (work / f'iter_{fidelity.MAX_ITERS}.pth').is_file():
        work.mkdir(parents=True, exist_ok=True)
        fidelity._run([sys.executable, str(code / 'segmentation' / 'tools' / 'train.py'), str(config),
                       '--num-pem', str(num_pem), '--work-dir', str(work), '--cfg-options',
                       *fidelity.reference_options(seed), *fidelity.EVERY_ITERATION, *_data_roots(data)],
                      work.parent / f'{work.name}.train.log', cwd=work.parent)  # it writes a config there
    return work


def test(code: Path, work: Path, scale_factor: float) -> float:
    """Validation mIoU (%) of the reference's ``test.py`` on a trained work dir at one s."""
    log = work.parent / f'{work.name}.test_s{scale_factor:g}.log'
    if not log.is_file() or 'mIoU:' not in log.read_text():
        fidelity._run([sys.executable, str(code / 'segmentation' / 'tools' / 'test.py'), str(work),
                       '--scale-factor', str(scale_factor)], log, cwd=work.parent,
                      # its test.py loads MMEngine's checkpoint (which pickles a HistoryBuffer) with
                      # torch.load's default, which refuses such files since torch 2.6
                      extra_env={'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD': '1'})
    found = re.findall(r'mIoU: ([0-9.]+)', log.read_text())
    if not found:
        sys.exit(f'fidelity_reference: no mIoU in {log}')
    return round(float(found[-1]), 2)


def record(code: Path, work: Path, seeds: list[int], iters: int) -> dict:
    """Train and test every (seed, PEMs) with the reference code; the yardstick's content."""
    from npe import provenance

    fixture = ROOT / 'benchmarks' / 'fidelity_fixture'
    data = fidelity.generate(fixture, work / 'data')
    import mmcv
    import mmengine
    import mmseg
    import torch

    out = {'what': "The reference NPE code's own training losses, validation mIoU and trained-weight "
                   'digests on the fidelity set, measured on the machine below (a yardstick for '
                   "`upstream` on CPUs whose kernels round as this one's do).",
           'reference_code': {'repository': 'masoudya/neural-prior-estimator',
                              'commit': _reference_commit(code),
                              'scripts': 'segmentation/tools/train.py, segmentation/tools/test.py'},
           'command': 'train.py unet_longtail_1600.py --num-pem M --cfg-options '
                      + ' '.join(fidelity.reference_options(0) + fidelity.EVERY_ITERATION)
                      .replace('seed=0', 'seed=SEED') + ' (+ the data root); test.py WORK_DIR --scale-factor S',
           'machine': provenance.cpu(), 'recorded': provenance.utc_now(),
           'stack': {'python': sys.version.split()[0], 'torch': torch.__version__, 'mmcv': mmcv.__version__,
                     'mmengine': mmengine.__version__, 'mmsegmentation': mmseg.__version__,
                     'threads': torch.get_num_threads()},
           'columns': ['iter', *machine.LOSS_TERMS], 'runs': {}, 'results': {}, 'weights': {}}
    for seed in seeds:
        rows: dict[str, float] = {}
        for num_pem in (0, 1):
            name = f'num_pem={num_pem},seed={seed}'
            run = train(code, fixture / 'unet_longtail_1600.py', data, work / f'm{num_pem}_seed{seed}',
                        num_pem, seed)
            out['runs'][name] = machine.training_curve(run)[:iters]
            out['weights'][name] = machine.weights_digest(run / f'iter_{fidelity.MAX_ITERS}.pth')
            rows.update({row: test(code, run, s) for row, s in ROWS[num_pem].items()})
            print(f'fidelity_reference: {name} done', file=sys.stderr)
        out['results'][str(seed)] = rows
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--reference-code', type=Path, required=True,
                        help='a checkout of the reference NPE repository (its segmentation/ folder)')
    parser.add_argument('--name', required=True, help='the machine kind, e.g. amd-epyc-avx2')
    parser.add_argument('--work', type=Path, default=ROOT / 'work_dirs' / 'fidelity_reference',
                        help='data and work dirs (kept; reruns reuse finished trainings)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--curve-iters', type=int, default=700)
    parser.add_argument('--out', type=Path, help='default: benchmarks/fidelity_fixture/machines/NAME.json')
    args = parser.parse_args(argv)
    if not (args.reference_code / 'segmentation' / 'tools' / 'train.py').is_file():
        parser.error(f'{args.reference_code} has no segmentation/tools/train.py: '
                     'give a checkout of the reference NPE repository')
    result = record(args.reference_code.resolve(), args.work.resolve(), args.seeds, args.curve_iters)
    out = args.out or ROOT / 'benchmarks' / 'fidelity_fixture' / 'machines' / f'{args.name}.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=None, separators=(',', ':')) + '\n')
    print(out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
