"""Probe the five commands with bad input and faults, as a new user would (issue 13; issue 18's
families of symbolic links, foreign files, concurrent tools, the Python API and a full disk are in
``probe_families.py``).

Every case runs the installed command in a real process, in a folder of its own, and is counted as
  clean         exit status 2, exactly one ``error:`` line on stderr, no traceback;
  traceback     a Python traceback anywhere in the output;
  silently wrong exit status 0 (or anything but 2 without a traceback);
  left behind   any file created or changed in the case's folder (inputs are restored first).

    .venv/bin/python benchmarks/probe_bad_input.py            # about 10 minutes on 2 busy cores
    .venv/bin/python benchmarks/probe_bad_input.py -k npe-test --verbose

One tiny training run of the built-in smoke set is made first (npe-test needs a work dir).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SMOKE = 'npe::smoke_unet.py'
ONE_ITER = ['train_cfg.max_iters=1', 'train_cfg.val_interval=1']


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def make_assets(root: Path) -> dict[str, Path]:
    """Data, a trained smoke work dir, and damaged copies of its files (shared, read-only)."""
    from npe import datasets

    data = root / 'data'
    datasets.get('smoke').prepare(data)
    run = root / 'run'
    proc = subprocess.run([str(BIN / 'npe-train'), SMOKE, '--work-dir', str(run), '--data-root', str(data),
                           '--seed', '0', '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                           'default_hooks.checkpoint.interval=2'], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f'probe: the tiny training run failed:\n{proc.stderr[-2000:]}')
    run0 = root / 'run0'   # a run without PEM (issue 18: several s there)
    proc = subprocess.run([str(BIN / 'npe-train'), SMOKE, '--work-dir', str(run0), '--data-root', str(data),
                           '--seed', '0', '--num-pem', '0', '--cfg-options', 'train_cfg.max_iters=1',
                           'train_cfg.val_interval=1'], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f'probe: the tiny 0-PEM training run failed:\n{proc.stderr[-2000:]}')
    ckpt = run / 'iter_2.pth'
    bad = root / 'bad'
    bad.mkdir()
    (bad / 'cut.pth').write_bytes(ckpt.read_bytes()[:len(ckpt.read_bytes()) // 3])
    (bad / 'text.pth').write_text('not a checkpoint\n')
    (bad / 'empty.pth').write_bytes(b'')
    import torch

    from npe.checkpoint import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    state['state_dict'] = {k: v for k, v in state['state_dict'].items() if '.pems.' not in k}
    torch.save(state, bad / 'no_pem.pth')
    (bad / 'broken.py').write_text('model = dict(\n')
    (bad / 'plain.py').write_text("_base_ = ['mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py']\n")
    (bad / 'a_file').write_text('x\n')
    return dict(data=data, run=run, run0=run0, bad=bad)


def recipe_variant(case_dir: Path, text_change: tuple[str, str] | None = None, extra: str = '') -> Path:
    from npe.recipes import load_recipe

    text = Path(load_recipe('smoke').path).read_text().replace('name: smoke', 'name: probe')
    if text_change:
        text = text.replace(*text_change)
    path = case_dir / 'probe.yaml'
    path.write_text(text + extra)
    return path


def result_file(case_dir: Path, **change) -> Path:
    folder = case_dir / 'results' / 'probe'
    folder.mkdir(parents=True)
    data = {'schema': 'npe-result/1', 'status': 'ok', 'recipe': {'name': 'probe'}, 'variant': 'baseline',
            'seed': 0, 'scale_factor': 1.0, 'metrics': {'mIoU': 50.0, 'mDice': 60.0, 'mAcc': 55.0, 'aAcc': 90.0}}
    data.update(change)
    path = folder / 'baseline__seed0__s1.json'
    path.write_text(json.dumps(data))
    return path


def cases(a: dict[str, Path]) -> list[tuple[str, str, object]]:
    """(name, command, argv or callable(case_dir) -> argv)."""
    d, run, bad = str(a['data']), a['run'], a['bad']
    f = str(bad / 'a_file')
    port = closed_port()
    T = 'npe-train'
    tr = [SMOKE, '--data-root', d]

    def work(case: Path) -> str:
        return str(case / 'w')

    def copy_run(case: Path) -> Path:
        target = case / 'run'
        shutil.copytree(run, target, ignore=shutil.ignore_patterns('test_*'))
        return target

    out: list[tuple[str, str, object]] = []
    # ---------------------------------------------------------------- npe-train
    for name, extra in [
            ('missing config', ['no_such.py']), ('config is a folder', [str(bad)]),
            ('config with a syntax error', [str(bad / 'broken.py')]),
            ('unknown mmseg:: config', ['mmseg::nope/nope.py'])]:
        out.append((f'train: {name}', T, lambda c, e=extra: [*e, '--work-dir', work(c)]))
    for name, extra in [
            ('--load-from missing', ['--load-from', 'nope.pth']),
            ('--load-from cut off', ['--load-from', str(bad / 'cut.pth')]),
            ('--load-from text file', ['--load-from', str(bad / 'text.pth')]),
            ('--load-from empty file', ['--load-from', str(bad / 'empty.pth')]),
            ('--num-pem -1', ['--num-pem', '-1']), ('--num-pem abc', ['--num-pem', 'abc']),
            ('--num-pem 0 with both freezes', ['--num-pem', '0', '--freeze-backbone', '--freeze-decode']),
            ('--pem-type bad', ['--pem-type', 'Nope']),
            ('--scale-factor 0', ['--scale-factor', '0']), ('--scale-factor -1', ['--scale-factor', '-1']),
            ('--scale-factor nan', ['--scale-factor', 'nan']), ('--scale-factor inf', ['--scale-factor', 'inf']),
            ('--scale-factor abc', ['--scale-factor', 'abc']), ('--protocol bad', ['--protocol', 'bad']),
            ('--seed -1', ['--seed', '-1']), ('--seed abc', ['--seed', 'abc']),
            ('--seed 2**40', ['--seed', str(2 ** 40)]), ('--amp on CPU', ['--amp']),
            ('--launcher bad', ['--launcher', 'mpi']),
            ('--cfg-options without =', ['--cfg-options', 'train_cfg.max_iters']),
            ('--cfg-options unbalanced', ['--cfg-options', 'a=[1,2']),
            ('max_iters=abc', ['--cfg-options', 'train_cfg.max_iters=abc']),
            ('max_iters=-3', ['--cfg-options', 'train_cfg.max_iters=-3']),
            ('max_iters=0', ['--cfg-options', 'train_cfg.max_iters=0']),
            ('max_iters=1.5', ['--cfg-options', 'train_cfg.max_iters=1.5']),
            ('val_interval=0', ['--cfg-options', 'train_cfg.val_interval=0']),
            ('batch_size=0', ['--cfg-options', 'train_dataloader.batch_size=0']),
            ('batch_size=abc', ['--cfg-options', 'train_dataloader.batch_size=abc']),
            ('num_workers=-1', ['--cfg-options', 'train_dataloader.num_workers=-1']),
            ('lr=abc', ['--cfg-options', 'optim_wrapper.optimizer.lr=abc']),
            ('lr=-1', ['--cfg-options', 'optim_wrapper.optimizer.lr=-1']),
            ('index into a number', ['--cfg-options', 'train_cfg.max_iters.x=1']),
            ('unknown flag', ['--nope'])]:
        out.append((f'train: {name}', T, lambda c, e=extra: [*tr, '--work-dir', work(c), *e]))
    out += [
        ('train: --work-dir is a file', T, lambda c: [*tr, '--work-dir', f]),
        ('train: --work-dir under a file', T, lambda c: [*tr, '--work-dir', f + '/w']),
        ('train: --data-root under a file', T, lambda c: [SMOKE, '--data-root', f + '/d', '--work-dir', work(c)]),
        ('train: --data-root without data', T, lambda c: [SMOKE, '--data-root', str(c / 'empty'),
                                                           '--work-dir', work(c)]),
    ]
    for name, extra in [('--num-pem 0', ['--num-pem', '0']), ('--pem-type FCNHead', ['--pem-type', 'FCNHead']),
                        ('--protocol fixed', ['--protocol', 'fixed']), ('--freeze-backbone', ['--freeze-backbone'])]:
        out.append((f'train: --resume with {name}', T,
                    lambda c, e=extra: [*tr, '--work-dir', str(copy_run(c)), '--resume', *e]))
    # ---------------------------------------------------------------- npe-test
    S = 'npe-test'
    out += [
        ('test: WORK_DIR missing', S, lambda c: [str(c / 'nope')]),
        ('test: WORK_DIR is a file', S, lambda c: [f]),
        ('test: WORK_DIR empty', S, lambda c: [str((c / 'e').mkdir() or c / 'e')]),
        ('test: damaged npe_train.json', S, lambda c: [str(_damage(copy_run(c), 'npe_train.json', '{'))]),
        ('test: copied work dir without .pth', S, lambda c: [str(_strip_pth(copy_run(c)))]),
        ('test: last checkpoint cut off', S, lambda c: [str(_cut_last(copy_run(c)))]),
        ('test: no arguments', S, lambda c: []),
    ]
    for name, extra in [
            ('--checkpoint missing', ['--checkpoint', 'nope.pth']),
            ('--checkpoint cut off', ['--checkpoint', str(bad / 'cut.pth')]),
            ('--checkpoint text file', ['--checkpoint', str(bad / 'text.pth')]),
            ('--checkpoint empty', ['--checkpoint', str(bad / 'empty.pth')]),
            ('--checkpoint of another model', ['--checkpoint', str(bad / 'no_pem.pth')]),
            ('--scale-factor 0', ['--scale-factor', '0']), ('--scale-factor -2', ['--scale-factor', '-2']),
            ('--scale-factor nan', ['--scale-factor', 'nan']), ('--scale-factor -inf', ['--scale-factor', '-inf']),
            ('--scale-factor abc', ['--scale-factor', 'abc']), ('--scale-factor none given', ['--scale-factor']),
            ('--out is a folder', ['--out', str(bad)]), ('--out under a file', ['--out', f + '/m.json']),
            ('--config missing', ['--config', 'nope.py']), ('--config broken', ['--config', str(bad / 'broken.py')]),
            ('--config not an NPE config', ['--config', str(bad / 'plain.py')]),
            ('--data-root under a file', ['--data-root', f + '/d']),
            ('--data-root without data', ['--data-root', str(bad)]),
            ('--cfg-options without =', ['--cfg-options', 'x']),
            ('test batch_size=abc', ['--cfg-options', 'test_dataloader.batch_size=abc']),
            ('--launcher bad', ['--launcher', 'mpi']), ('--tta without tta config', ['--tta']),
            ('unknown flag', ['--nope'])]:
        out.append((f'test: {name}', S, lambda c, e=extra: [str(run), *e]))
    # ---------------------------------------------------------------- npe-data
    D = 'npe-data'
    for name, argv in [
            ('no command', []), ('unknown command', ['fetch', 'stare']), ('prepare unknown set', ['prepare', 'nope']),
            ('prepare nothing', ['prepare']), ('prepare --data-root under a file', ['prepare', 'smoke', '--data-root', f + '/d']),
            ('prepare stare from a closed port', ['prepare', 'stare', '--mirror', f'http://127.0.0.1:{port}']),
            ('prepare stare offline', ['prepare', 'stare', '--offline']),
            ('prepare --mirror ftp', ['prepare', 'stare', '--mirror', 'ftp://example.org']),
            ('sources unknown set', ['sources', 'nope']),
            ('checkpoint from a closed port', ['checkpoint', f'http://127.0.0.1:{port}/m-12345678.pth']),
            ('checkpoint bad checksum form', ['checkpoint', 'http://127.0.0.1/m.pth', '--checksum', 'abc']),
            ('checkpoint unknown checksum algo', ['checkpoint', 'http://127.0.0.1/m.pth', '--checksum', 'crc:00']),
            ('checkpoint not a URL', ['checkpoint', 'model.pth']),
            ('checkpoint without checksum', ['checkpoint', 'http://127.0.0.1/model.pth']),
            ('checkpoint offline', ['checkpoint', 'http://127.0.0.1/m-12345678.pth', '--offline']),
            ('checkpoint --data-root under a file', ['checkpoint', 'http://127.0.0.1/m-12345678.pth', '--data-root', f + '/d']),
            ('unknown flag', ['list', '--nope'])]:
        out.append((f'data: {name}', D, lambda c, argv=argv: [*argv, *(['--data-root', str(c / 'dr')]
                                                                      if argv[:1] in (['prepare'], ['checkpoint']) and '--data-root' not in argv else [])]))
    # ---------------------------------------------------------------- npe-repro
    R = 'npe-repro'

    def repro(case: Path, *extra: str) -> list[str]:
        return ['--data-root', d, '--results-dir', str(case / 'results'), '--work-dir', str(case / 'work'), *extra]
    out += [
        ('repro: no recipe', R, lambda c: []),
        ('repro: unknown recipe', R, lambda c: ['nope', *repro(c)]),
        ('repro: recipe path missing', R, lambda c: [str(c / 'x.yaml'), *repro(c)]),
        ('repro: recipe YAML syntax error', R, lambda c: [str(_write(c / 'probe.yaml', 'name: [\n')), *repro(c)]),
        ('repro: recipe unknown key', R, lambda c: [str(recipe_variant(c, extra='learning_rate: 1\n')), *repro(c)]),
        ('repro: recipe max_iters -3', R, lambda c: [str(recipe_variant(c, ('max_iters: 20', 'max_iters: -3'))), *repro(c)]),
        ('repro: recipe cfg_options max_iters abc', R, lambda c: [str(recipe_variant(
            c, ('max_iters: 20', 'max_iters: 20\ncfg_options: {train_cfg.max_iters: abc}'))), *repro(c)]),
        ('repro: recipe cfg_options max_iters abc --dry-run', R, lambda c: [str(recipe_variant(
            c, ('max_iters: 20', 'max_iters: 20\ncfg_options: {train_cfg.max_iters: abc}'))), *repro(c, '--dry-run')]),
        ('repro: recipe cfg_options batch_size 0', R, lambda c: [str(recipe_variant(
            c, ('max_iters: 20', 'max_iters: 20\ncfg_options: {train_dataloader.batch_size: 0}'))), *repro(c)]),
        ('repro: recipe negative seed', R, lambda c: [str(recipe_variant(c, ('seeds: [0]', 'seeds: [-1]'))), *repro(c)]),
        ('repro: --seeds -1', R, lambda c: ['smoke', *repro(c, '--seeds', '-1')]),
        ('repro: --seeds abc', R, lambda c: ['smoke', *repro(c, '--seeds', 'abc')]),
        ('repro: --seeds 2**40', R, lambda c: ['smoke', *repro(c, '--seeds', str(2 ** 40))]),
        ('repro: --variants unknown', R, lambda c: ['smoke', *repro(c, '--variants', 'nope')]),
        ('repro: --results-dir a file', R, lambda c: ['smoke', '--results-dir', f, '--work-dir', str(c / 'w'), '--data-root', d]),
        ('repro: --results-dir under a file', R, lambda c: ['smoke', '--results-dir', f + '/r', '--work-dir', str(c / 'w'), '--data-root', d]),
        ('repro: --work-dir under a file', R, lambda c: ['smoke', '--results-dir', str(c / 'r'), '--work-dir', f + '/w', '--data-root', d]),
        ('repro: --data-root under a file', R, lambda c: ['smoke', '--results-dir', str(c / 'r'), '--work-dir', str(c / 'w'), '--data-root', f + '/d']),
        ('repro: stare_unet --offline', R, lambda c: ['stare_unet', '--offline', '--data-root', str(c / 'dr'),
                                                       '--results-dir', str(c / 'r'), '--work-dir', str(c / 'w')]),
        ('repro: stare_unet from a closed port', R, lambda c: ['stare_unet', '--mirror', f'http://127.0.0.1:{port}',
                                                                '--data-root', str(c / 'dr'), '--results-dir', str(c / 'r'),
                                                                '--work-dir', str(c / 'w')]),
        ('repro: unknown flag', R, lambda c: ['smoke', '--nope']),
    ]
    # ---------------------------------------------------------------- npe-tables
    B = 'npe-tables'
    recipe_flag = ['--recipe', 'smoke']
    for name, change in [('metrics "oops"', {'metrics': 'oops'}), ('no metrics', {'metrics': None}),
                         ('string metric', {'metrics': {'mIoU': '50'}}), ('metric 250', {'metrics': {'mIoU': 250.0}}),
                         ('seed differs from file name', {'seed': 7}), ('negative seed', {'seed': -1}),
                         ('status odd', {'status': 'done'}), ('schema other', {'schema': 'x/2'}),
                         ('per_class not lists', {'per_class': {'IoU': 'x'}}), ('variant missing', {'variant': None})]:
        out.append((f'tables: result file with {name}', B,
                    lambda c, ch=change: [str(_mk_results(c, ch)), '--no-figures', '--out-dir', str(c / 't')]))
    out += [
        ('tables: truncated result file', B, lambda c: [str(_truncated_results(c)), '--no-figures', '--out-dir', str(c / 't')]),
        ('tables: --out-dir under a file', B, lambda c: ['--results-dir', str(_mk_results(c, {}).parent), '--out-dir', f + '/t']),
        ('tables: --recipe unknown', B, lambda c: ['--results-dir', str(c), '--recipe', 'nope', '--out-dir', str(c / 't')]),
        ('tables: --recipe bad YAML', B, lambda c: ['--results-dir', str(c), '--recipe', str(_write(c / 'probe.yaml', 'x: [')),
                                                    '--out-dir', str(c / 't')]),
        ('tables: unknown flag', B, lambda c: ['--nope']),
    ]
    del recipe_flag
    import probe_families   # issue 18's families: links, foreign files, concurrency, the API, a full disk

    return [*[(*c, 'error') for c in out], *probe_families.cases(a, BIN)]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _damage(run: Path, name: str, text: str) -> Path:
    (run / name).write_text(text)
    return run


def _strip_pth(run: Path) -> Path:
    for p in run.glob('*.pth'):
        p.unlink()
    return run


def _cut_last(run: Path) -> Path:
    ckpt = run / 'iter_2.pth'
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[:len(data) // 3])
    return run


def _mk_results(case: Path, change: dict) -> Path:
    path = result_file(case, **change)
    recipe_variant(case)
    return path.parent.parent  # --results-dir


def _truncated_results(case: Path) -> Path:
    path = result_file(case)
    path.write_text(path.read_text()[:40])
    recipe_variant(case)
    return path.parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-k', default='', help="only cases whose name contains this (several: 'a|b')")
    parser.add_argument('--verbose', action='store_true', help='print every case')
    parser.add_argument('--json', metavar='FILE', help='write the per-case outcome as JSON')
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix='npe-probe-'))
    assets = make_assets(root / 'assets')
    counts = dict(tried=0, clean=0, tracebacks=0, silently_wrong=0, files_left_behind=0)
    outcomes = []
    for i, (name, command, argv, expect) in enumerate(cases(assets)):
        if not any(k in name for k in args.k.split('|')):
            continue
        case = root / f'case{i:03d}'
        case.mkdir()
        argv = argv(case) if callable(argv) else argv
        (case / 'probe_inputs').mkdir(exist_ok=True)
        before = snapshot(case)
        shared_before = snapshot(assets['run'])
        start = time.monotonic()
        # --resume / tables cases point the recipes at the case folder (probe.yaml) via --recipe.
        if command == 'npe-train' and '--resume' not in argv:  # a case not refused trains 1 iteration
            short = [o for o in ONE_ITER if o.split('=')[0] not in ' '.join(argv)]
            argv = [*argv, '--cfg-options', *short] if short else argv
        if command == 'npe-tables' and '--recipe' not in argv and (case / 'probe.yaml').exists():
            argv = [*argv, '--recipe', str(case / 'probe.yaml')]
        if command == 'npe-tables' and '--results-dir' not in argv and argv and not argv[0].startswith('-'):
            argv = ['--results-dir', argv[0], *argv[1:]]
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        env.pop('NPE_MIRROR', None)
        try:
            proc = subprocess.run([str(BIN / command), *argv], capture_output=True, text=True, cwd=case,
                                  env=env, timeout=600)
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired:
            rc, out, err = -1, '', 'timeout'
        took = time.monotonic() - start
        after = snapshot(case)
        left = sorted(k for k in after if before.get(k) != after[k])
        left += [f'(shared run) {k}' for k, v in snapshot(assets['run']).items() if shared_before.get(k) != v]
        errors = [line for line in err.splitlines() if line.startswith('error: ')]
        traceback = 'Traceback (most recent call last)' in out + err
        # 'ok' cases (probe_families) check several processes themselves: clean = exit 0
        clean = not traceback and (rc == 0 if expect == 'ok' else rc == 2 and len(errors) == 1)
        counts['tried'] += 1
        counts['clean'] += clean
        counts['tracebacks'] += traceback
        counts['silently_wrong'] += (not traceback and not clean)
        counts['files_left_behind'] += bool(left)
        said = errors or [line for line in out.splitlines() if line.startswith('wrong: ')]
        outcome = dict(name=name, command=command, argv=argv, rc=rc, clean=clean, traceback=traceback,
                       left_behind=left, error=said[0] if said else err.strip().splitlines()[-1:] or '',
                       seconds=round(took, 1))
        outcomes.append(outcome)
        if args.verbose or not clean or left:
            mark = 'ok ' if clean and not left else 'BAD'
            print(f'{mark} {name} (rc {rc}, {took:.1f} s): {outcome["error"]}'
                  + (f'; left behind: {left[:4]}' if left else ''), flush=True)
    print(json.dumps(counts))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(counts=counts, cases=outcomes), indent=1) + '\n')
    shutil.rmtree(root, ignore_errors=True)
    return 0 if counts['clean'] == counts['tried'] and not counts['files_left_behind'] else 1


if __name__ == '__main__':
    raise SystemExit(main())
