"""Issue 18's families for ``probe_bad_input.py``: symbolic links, foreign files, concurrent tools,
wrong types and values to the Python API, a full disk, and the cases "also seen" there.

A case is ``(name, command, argv or callable(case_dir) -> argv, expect)``: ``expect='error'`` is
clean as the probe defines it (exit 2, one ``error:`` line, no traceback); ``expect='ok'`` cases
are small scripts (run with the probe's Python) that drive several real processes, check what
the issue asks of them, and exit 0 only if all of it holds (else one line saying what did not).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

SMOKE = 'npe::smoke_unet.py'

# A call of the Python API: a UserError is the promised outcome (printed as the commands do);
# anything else escaping is a traceback; a return is silently wrong.
API = ('import sys, npe\nfrom npe.errors import UserError\ntry:\n    r = {call}\n'
       'except UserError as e:\n    print("error: " + str(e).splitlines()[0], file=sys.stderr); sys.exit(2)\n'
       'print("returned", repr(r)[:200])\n')


def smoke_results(folder: Path, recipe_name: str = 'smoke') -> Path:
    """A complete, valid set of result files of a built-in recipe under ``folder/<recipe>/``, written
    by the driver's own writer (numbers invented; the files keep the contract)."""
    from npe import datasets
    from npe.recipes import load_recipe
    from npe.results import write_result
    from npe.run import job_rows, plan_runs

    recipe = load_recipe(recipe_name, resolve=False)
    classes = len(datasets.get(recipe.dataset).class_names)
    for job in plan_runs(recipe, work_root=folder / 'unused_work'):
        for row in job_rows(recipe, job):
            value = 2.0 if row.s == 'auto' else float(row.s)
            v = row.variant
            item = dict(variant=row.name, s=row.s, value=value, adjustment=row.adjustment,
                        auto=dict(metric='mIoU', split='holdout', candidates={'2': 50.0}) if row.s == 'auto' else None,
                        learned_prior=[0.1] * classes if row.adjustment == 'npe' else None,
                        options=dict(num_pem=v.num_pem, pem_type=v.pem_type, freeze_backbone=v.freeze_backbone,
                                     freeze_decode=v.freeze_decode),
                        row=dict(metrics={'aAcc': 90.0, 'mIoU': 50.0 + job.seed, 'mAcc': 55.0, 'mDice': 60.0},
                                 per_class=dict(classes=list(datasets.get(recipe.dataset).class_names),
                                                IoU=[50.0] * classes, Acc=[55.0] * classes, Dice=[60.0] * classes)))
            write_result(folder, recipe, train_key=job.train_key, protocol=job.protocol, seed=job.seed, item=item,
                         record=dict(iterations=20, wall_time_s=1.0, checkpoint='w/iter_20.pth'),
                         share=[1.0 / classes] * classes, loss=[[10, 1.0], [20, 0.5]], env={})
    shutil.rmtree(folder / 'unused_work', ignore_errors=True)
    return folder


def _results_with(case: Path, how: str) -> Path:
    """smoke results in ``case/r`` with one file foreign (a longtail_synth file under a smoke name)
    or mislabelled (npe1 s=2's content under baseline s=1's name)."""
    results = smoke_results(case / 'r')
    target = results / 'smoke' / 'baseline__seed0__s1.json'
    if how == 'foreign':
        other = smoke_results(case / 'other_recipe', 'longtail_synth')
        shutil.copy(other / 'longtail_synth' / 'baseline__seed0__s1.json', target)
        shutil.rmtree(case / 'other_recipe')
    else:
        shutil.copy(results / 'smoke' / 'npe1__seed0__s2.json', target)
    return results


def _link(case: Path, name: str, loop: bool = False) -> str:
    path = case / name
    os.symlink(path if loop else case / f'{name}_not_mounted', path)
    return str(path)


def cases(a: dict[str, Path], bin_dir: Path) -> list[tuple]:
    d, run, run0, f = str(a['data']), str(a['run']), str(a['run0']), str(a['bad'] / 'a_file')
    py = 'python'
    R, B, T, S, D = 'npe-repro', 'npe-tables', 'npe-train', 'npe-test', 'npe-data'

    def repro(c: Path, results: str | None = None, work: str | None = None, data: str | None = None) -> list[str]:
        return ['smoke', '--results-dir', results or str(c / 'r'), '--work-dir', work or str(c / 'w'),
                '--data-root', data or d]

    out: list[tuple] = [
        # ------------------------------------------------------------ symbolic links
        ('links: repro --results-dir dangling', R, lambda c: repro(c, results=_link(c, 'res')), 'error'),
        ('links: repro --work-dir dangling', R, lambda c: repro(c, work=_link(c, 'wd')), 'error'),
        ('links: repro --data-root dangling', R, lambda c: repro(c, data=_link(c, 'dr')), 'error'),
        ('links: repro --results-dir link loop', R, lambda c: repro(c, results=_link(c, 'res', loop=True)), 'error'),
        ('links: tables --results-dir dangling', B, lambda c: ['--results-dir', _link(c, 'res')], 'error'),
        ('links: tables --out-dir link loop', B, lambda c: ['--results-dir', str(smoke_results(c / 'r')),
                                                             '--out-dir', _link(c, 't', loop=True)], 'error'),
        ('links: train --work-dir dangling', T, lambda c: [SMOKE, '--data-root', d, '--work-dir', _link(c, 'wd')], 'error'),
        ('links: test --out in a dangling folder', S, lambda c: [run, '--out', _link(c, 'o') + '/m.json'], 'error'),
        ('links: data prepare --data-root dangling', D, lambda c: ['prepare', 'smoke', '--data-root', _link(c, 'dr')],
         'error'),
        # ------------------------------------------------------------ foreign files
        ('foreign: repro with another recipe\'s file', R, lambda c: repro(c, results=str(_results_with(c, 'foreign'))),
         'error'),
        ('foreign: tables with another recipe\'s file', B,
         lambda c: ['--results-dir', str(_results_with(c, 'foreign')), '--no-figures'], 'error'),
        ('foreign: tables with a mislabelled file', B,
         lambda c: ['--results-dir', str(_results_with(c, 'mislabelled')), '--no-figures'], 'error'),
        ('foreign: tables --compare against another recipe\'s file', B,
         lambda c: ['--results-dir', str(smoke_results(c / 'mine')), '--no-figures', '--out-dir', str(c / 'mine' / 't'),
                    '--compare', str(_results_with(c, 'foreign'))], 'error'),
        ('foreign: tables --compare against a mislabelled file', B,
         lambda c: ['--results-dir', str(smoke_results(c / 'mine')), '--no-figures', '--out-dir', str(c / 'mine' / 't'),
                    '--compare', str(_results_with(c, 'mislabelled'))], 'error'),
        ('foreign: repro --compare against another recipe\'s file', R,
         lambda c: [*repro(c), '--compare', str(_results_with(c, 'foreign'))], 'error'),
        # ------------------------------------------------------------ "also seen"
        ('also: tables --results-dir a file', B, lambda c: ['--results-dir', f], 'error'),
        ('also: tables --results-dir missing', B, lambda c: ['--results-dir', str(c / 'typo')], 'error'),
        ('also: train --work-dir /proc/x', T, lambda c: [SMOKE, '--data-root', d, '--work-dir', '/proc/x'], 'error'),
        ('also: repro on a folder', R, lambda c: [str(a['bad']), '--results-dir', str(c / 'r')], 'error'),
        ('also: repro --compare with --slurm', R, lambda c: [*repro(c), '--compare', str(c), '--slurm', '-p', 'x'],
         'error'),
        ('also: train misspelt --cfg-options key', T,
         lambda c: [SMOKE, '--data-root', d, '--work-dir', str(c / 'w'), '--cfg-options', 'train_cfg.max_iter=1'],
         'error'),
        ('also: test several s on a 0-PEM run says s has no effect', py,
         lambda c: ['-c', _script_zero_pem(bin_dir, run0)], 'ok'),
        # ------------------------------------------------------------ concurrent tools, a full disk
        ('concurrent: two npe-tables at once, 5 rounds', py, lambda c: ['-c', _script_two_tables(bin_dir)], 'ok'),
        ('concurrent: two npe-repro on one finished recipe', py,
         lambda c: ['-c', _script_two_repro(bin_dir, d)], 'ok'),
        ('concurrent: two drivers, one results folder, other work dirs', py,
         lambda c: ['-c', _script_two_work_dirs(bin_dir)], 'ok'),
        ('disk full: tables on a 64 KiB tmpfs, then the rerun', py, lambda c: ['-c', _script_disk_full(bin_dir)], 'ok'),
    ]
    # ------------------------------------------------------------ the Python API
    for call in [
            'npe.apply_npe(None)', 'npe.apply_npe("x.py")', f'npe.apply_npe("{SMOKE}", num_pem="abc")',
            f'npe.apply_npe("{SMOKE}", num_pem=-1)', f'npe.apply_npe("{SMOKE}", scale_factor="big")',
            f'npe.apply_npe("{SMOKE}", pem_type=3)', f'npe.apply_npe("{SMOKE}", freeze_backbone="yes")',
            'npe.train(None)', 'npe.train(123)', f'npe.train("{SMOKE}", num_pem="x")',
            f'npe.train("{SMOKE}", seed="x")', f'npe.train("{SMOKE}", cfg_options="a=1")',
            f'npe.train("{SMOKE}", work_dir="{f}")', f'npe.evaluate("{run}", scale_factors=2)',
            f'npe.evaluate("{run}", scale_factors=["a"])', 'npe.evaluate(123)', 'npe.evaluate("no_such_dir")',
            f'npe.evaluate("{run}", checkpoint=5)', 'npe.run_recipe("smoke", variants="npe1", dry_run=True)',
            'npe.run_recipe(5)', 'npe.run_recipe("smoke", seeds="0", dry_run=True)',
            'npe.run_recipe("smoke", gpus="2", dry_run=True)', 'npe.run_recipe("nope")',
            'npe.load_results("nope")', 'npe.load_results("smoke", results_dir="no_such_dir")',
            f'npe.load_results("smoke", results_dir="{f}")', 'npe.load_results(3)',
            'npe.load_recipe(None)', 'npe.load_recipe(3)', 'npe.load_recipe("nope")',
            f'npe.load_recipe("{a["bad"]}")']:
        out.append((f'api: {call.replace(str(a["bad"]), "BAD")}', py, ['-c', API.format(call=call)], 'error'))
    return out


# Each script below runs real processes of the installed commands in a folder of its own, prints one
# line saying what did not hold, and exits 1 then (0 when all held). Tracebacks of a child are echoed.
_PRELUDE = '''import json, os, subprocess, sys, tempfile, shutil
from pathlib import Path
sys.path.insert(0, {bench!r})
from probe_families import smoke_results
BIN = Path({bin!r})
tmp = Path(tempfile.mkdtemp(prefix='npe-probe-script-'))
def fail(why, *outs):
    for o in outs:
        if 'Traceback' in o:
            print(o[-3000:], file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    print('wrong: ' + why); sys.exit(1)
def done():
    shutil.rmtree(tmp, ignore_errors=True); sys.exit(0)
'''


def _prelude(bin_dir: Path) -> str:
    return _PRELUDE.format(bench=str(Path(__file__).parent), bin=str(bin_dir))


def _script_two_tables(bin_dir: Path) -> str:
    return _prelude(bin_dir) + '''
res = smoke_results(tmp / 'r')
for round in range(5):
    procs = [subprocess.Popen([str(BIN / 'npe-tables'), '--results-dir', str(res), '-q'], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    if any(p.returncode for p in procs):
        fail(f'round {round}: exit statuses {[p.returncode for p in procs]}', *[o[1] for o in outs])
left = [p.name for p in res.rglob('*.tmp')]
if left:
    fail(f'temporary files left: {left}')
done()
'''


def _script_two_repro(bin_dir: Path, data: str) -> str:
    return _prelude(bin_dir) + f'''
res = smoke_results(tmp / 'r')
argv = [str(BIN / 'npe-repro'), 'smoke', '--results-dir', str(res), '--work-dir', str(tmp / 'w'), '--data-root', {data!r}]
procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
outs = [p.communicate(timeout=600) for p in procs]
if any(p.returncode for p in procs):
    fail(f'exit statuses {{[p.returncode for p in procs]}}', *[o[1] for o in outs])
if any('training in' in o[0] for o in outs):
    fail('a finished run was trained again')
done()
'''


def _script_two_work_dirs(bin_dir: Path) -> str:
    return _prelude(bin_dir) + '''
res = tmp / 'r'
(res / 'stare_unet').mkdir(parents=True)
code = ('import sys, time; from pathlib import Path; from npe.preflight import note_driver; '
        'note_driver(Path(sys.argv[1]), Path(sys.argv[2])); print("ready", flush=True); time.sleep(600)')
a = subprocess.Popen([sys.executable, '-c', code, str(res / 'stare_unet'), str(tmp / 'wa')], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
try:
    if a.stdout.readline() != 'ready\\n':
        fail('driver A did not start', a.stderr.read())
    b = subprocess.run([str(BIN / 'npe-repro'), 'stare_unet', '--offline', '--results-dir', str(res), '--work-dir',
                        str(tmp / 'wb'), '--data-root', str(tmp / 'd')], capture_output=True, text=True, timeout=600)
finally:
    a.kill(); a.wait()
if 'Traceback' in b.stderr or 'warning: another npe-repro' not in b.stderr:
    fail('driver B was not warned of driver A', b.stderr)
done()
'''


def _script_disk_full(bin_dir: Path) -> str:
    return _prelude(bin_dir) + '''
res = smoke_results(tmp / 'r')
small = tmp / 'small'; small.mkdir()
if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', str(small)]).returncode:
    fail('cannot mount a tmpfs here (not root?)')
_fail = fail
def fail(why, *outs):   # unmounted first, or the scratch folder cannot be removed
    subprocess.run(['umount', str(small)]); _fail(why, *outs)
try:
    argv = [str(BIN / 'npe-tables'), '--results-dir', str(res), '--out-dir', str(small / 't'), '-q']
    first = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    lines = first.stderr.splitlines()
    if first.returncode != 2 or len(lines) != 1 or 'no space left' not in lines[0]:
        fail(f'full disk: exit {first.returncode}, stderr {lines[-3:]}', first.stderr)
    if list(small.rglob('*.tmp')):
        fail('half-written files kept')
    subprocess.run(['mount', '-o', 'remount,size=32m', str(small)], check=True)
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    ref = subprocess.run([*argv[:3], '--out-dir', str(tmp / 'ref'), '-q'], capture_output=True, text=True)
    if again.returncode or ref.returncode:
        fail('the rerun failed', again.stderr, ref.stderr)
    got = {p.relative_to(small / 't'): p.read_bytes() for p in (small / 't').rglob('*') if p.is_file()}
    want = {p.relative_to(tmp / 'ref'): p.read_bytes() for p in (tmp / 'ref').rglob('*') if p.is_file()}
    if got != want:
        fail(f'the rerun is not complete: {sorted(map(str, set(want) ^ set(got)))[:4]}')
finally:
    subprocess.run(['umount', str(small)], stderr=subprocess.DEVNULL)
done()
'''


def _script_zero_pem(bin_dir: Path, run0: str) -> str:
    return _prelude(bin_dir) + f'''
p = subprocess.run([str(BIN / 'npe-test'), {run0!r}, '--scale-factor', '1', '2', '--out', str(tmp / 'm.json')],
                   capture_output=True, text=True, timeout=600)
if p.returncode:
    fail(f'exit {{p.returncode}}', p.stderr)
if 's has no effect' not in p.stdout:
    fail('identical rows for every s, without a word')
shutil.rmtree(Path({run0!r}) / sorted(x.name for x in Path({run0!r}).glob('test_*'))[-1], ignore_errors=True)
done()
'''
