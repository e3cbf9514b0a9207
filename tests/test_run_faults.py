"""npe-repro under faults, in real processes: two drivers started together, SIGTERM, altered result
files, output folders, and the files' modes (issue 13)."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from npe import results as result_files
from npe.recipes import load_recipe

BIN = Path(sys.executable).parent


def tiny_recipe(tmp: Path) -> Path:
    """The smoke recipe, 4 iterations per training."""
    text = Path(load_recipe('smoke').path).read_text()
    path = tmp / 'tiny.yaml'
    path.write_text(text.replace('name: smoke', 'name: tiny').replace('max_iters: 20', 'max_iters: 4')
                    + 'decomposition: false\n')
    return path


def repro_cmd(tmp: Path, recipe: Path, *args: str) -> list[str]:
    return [str(BIN / 'npe-repro'), str(recipe), '--data-root', str(tmp / 'data'), '--results-dir',
            str(tmp / 'results'), '--work-dir', str(tmp / 'work'), '--no-tables', *args]


def env() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED='1')


def valid_results(tmp: Path) -> list[str]:
    runs = result_files.read_results(tmp / 'results', 'tiny')   # raises on any file breaking the contract
    assert all(r.ok for r in runs)
    return sorted(r.file for r in runs)


EXPECTED = ['baseline__seed0__s1.json', 'counted_la__seed0__s1.json', 'counted_la__seed0__s2.json',
            'npe1__seed0__s1.json', 'npe1__seed0__s2.json']


@pytest.mark.integration
def test_two_drivers_started_together_train_each_run_once(tmp_path):
    recipe = tiny_recipe(tmp_path)
    from npe import datasets

    datasets.get('smoke').prepare(tmp_path / 'data')  # the data step is not what this test is about
    procs = [subprocess.Popen(repro_cmd(tmp_path, recipe), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env()) for _ in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    everything = '\n'.join(outs)
    assert everything.count('baseline seed 0: training in') == 1, outs
    assert everything.count('npe1 seed 0: training in') == 1, outs
    # The driver that did not train a job says why: put off while the other trained it, then skipped.
    assert 'another npe-repro is training it' in everything, outs
    assert 'done by another npe-repro, skipped' in everything, outs
    assert valid_results(tmp_path) == EXPECTED
    for job in ('baseline__seed0', 'npe1__seed0'):   # one training session per work dir
        sessions = [p for p in (tmp_path / 'work' / 'tiny' / job).iterdir()
                    if p.is_dir() and p.name[:1].isdigit()]
        assert len(sessions) == 1, sessions


@pytest.mark.integration
def test_sigterm_stops_cleanly_and_the_same_command_resumes(tmp_path):
    recipe = tiny_recipe(tmp_path)
    proc = subprocess.Popen(repro_cmd(tmp_path, recipe), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env())
    lines = []
    try:
        for line in proc.stdout:           # stop it once the first training's results are written
            lines.append(line)
            if 'result files written' in line:
                break
        assert proc.poll() is None, ''.join(lines)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = ''.join(lines) + rest
    assert proc.returncode == 143, out
    assert out.strip().splitlines()[-1].startswith('terminated (SIGTERM); finished runs are kept'), out
    assert 'Traceback' not in out
    kept = valid_results(tmp_path)
    assert kept and set(kept) < set(EXPECTED)
    again = subprocess.run(repro_cmd(tmp_path, recipe), capture_output=True, text=True, env=env(), timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert 'done, skipped' in again.stdout
    assert valid_results(tmp_path) == EXPECTED


def test_altered_result_file_is_redone(tmp_path):
    """A result file the contract refuses is not "done": the plan counts it as still to do. Positive
    control first (issue 22): the same file unaltered, written by the driver's own writer, counts as
    done, so the test cannot pass by a plan that counts nothing as done."""
    from npe.run import describe_plan, plan_runs

    recipe = load_recipe(tiny_recipe(tmp_path))
    v = recipe.source_variant('npe1')
    item = dict(variant='npe1', s=2.0, value=2.0, auto=None, adjustment='npe', learned_prior=None,
                options=dict(num_pem=v.num_pem, pem_type=v.pem_type, freeze_backbone=v.freeze_backbone,
                             freeze_decode=v.freeze_decode),
                row=dict(metrics={'aAcc': 90.0, 'mIoU': 50.0, 'mAcc': 55.0, 'mDice': 60.0}, per_class=None))
    path = result_files.write_result(tmp_path / 'results', recipe, train_key=v.train_key, protocol=v.protocol,
                                     seed=0, item=item, share=None, loss=[[1, 1.0]], env={},
                                     record=dict(iterations=4, wall_time_s=1.0, checkpoint='w/iter_4.pth'))
    assert path == result_files.result_path(tmp_path / 'results', 'tiny', 'npe1', 0, 2.0)
    jobs = plan_runs(recipe, work_root=tmp_path / 'work')

    def plan() -> str:
        return describe_plan(recipe, jobs, tmp_path / 'data', tmp_path / 'results')
    # the plan's count and the driver's skip ask one question: TrainJob.pending
    job = next(j for j in jobs if 'npe1' in {v.name for v in j.variants} and j.seed == 0)
    assert '(1 already done)' in plan()            # unaltered: done, not redone
    assert ('npe1', 2.0) in job.expected(recipe) and ('npe1', 2.0) not in job.pending(recipe, tmp_path / 'results')
    altered = json.loads(path.read_text())
    altered['metrics'] = 'oops'
    path.write_text(json.dumps(altered))
    assert '(0 already done)' in plan()            # altered: to do again
    assert job.pending(recipe, tmp_path / 'results') == set(job.expected(recipe))


@pytest.mark.parametrize('flag', ['--results-dir', '--work-dir', '--data-root'])
def test_output_folder_under_a_file_is_one_line_before_any_work(tmp_path, flag):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    args = {'--results-dir': str(tmp_path / 'r'), '--work-dir': str(tmp_path / 'w'),
            '--data-root': str(tmp_path / 'd')}
    args[flag] = str(blocker / 'sub')
    proc = subprocess.run([str(BIN / 'npe-repro'), 'smoke', *[x for kv in args.items() for x in kv]],
                          capture_output=True, text=True, env=env(), timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith('error: ') and len(proc.stderr.splitlines()) == 1
    assert flag in proc.stderr and str(blocker) in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a_file']


def test_files_follow_the_umask(tmp_path):
    from npe.files import write_json_atomic

    old = os.umask(0o002)
    try:
        path = write_json_atomic(tmp_path / 'shared' / 'r.json', {'a': 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o664
    assert json.loads(path.read_text()) == {'a': 1}
    assert [p.name for p in path.parent.iterdir()] == ['r.json']


def test_cli_restores_the_callers_sigterm_handler():
    """SIGTERM is handled like Ctrl-C inside a command; a main() called in-process (tests, notebooks)
    leaves the process's own handler as it was."""
    from npe.cli import tables as tables_cli

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit):
        tables_cli.main(['--nope'])
    assert signal.getsignal(signal.SIGTERM) is before


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and 'Traceback' not in out, out[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), out[-3000:]
    return lines[0]


@pytest.mark.parametrize('flag', ['--results-dir', '--work-dir', '--data-root'])
def test_output_folder_that_is_a_dangling_link_is_one_line_before_any_work(tmp_path, flag):
    """A results / work / data folder that is a symbolic link to a missing folder (a disk not
    mounted) is refused up front, naming the link and its target: before, the driver trained and
    evaluated, then died with a FileExistsError traceback."""
    link, target = tmp_path / 'link', tmp_path / 'not_mounted'
    link.symlink_to(target)
    args = {'--results-dir': str(tmp_path / 'r'), '--work-dir': str(tmp_path / 'w'),
            '--data-root': str(tmp_path / 'd')}
    args[flag] = str(link)
    proc = subprocess.run([str(BIN / 'npe-repro'), 'smoke', '--variants', 'baseline', '--no-tables',
                           *[x for kv in args.items() for x in kv]],
                          capture_output=True, text=True, env=env(), timeout=600)
    line = _one_line_error(proc)
    assert flag in line and str(link) in line and str(target) in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ['link'] and not target.exists()


@pytest.mark.parametrize('command', ['npe-tables --results-dir', 'npe-tables --out-dir',
                                     'npe-data prepare smoke --data-root', 'npe-train --work-dir',
                                     'npe-test --out'])
def test_every_command_refuses_a_dangling_output_link(tmp_path, command):
    """The same check in every command that writes a folder (one helper, npe.files.check_output_dir)."""
    link, target = tmp_path / 'link', tmp_path / 'not_mounted'
    link.symlink_to(target)
    name, *words = command.split()
    extra = {'npe-tables': ['--no-figures'] + (['--results-dir', str(tmp_path)] if '--out-dir' in words else []),
             'npe-train': ['npe::smoke_unet.py', '--data-root', str(tmp_path / 'data')],
             'npe-test': [str(tmp_path)]}.get(name, [])
    value = str(link / 'm.json') if name == 'npe-test' else str(link)
    proc = subprocess.run([str(BIN / name), *words, value, *extra], capture_output=True, text=True,
                          env=env(), timeout=300, cwd=tmp_path)
    line = _one_line_error(proc)
    assert 'symbolic link' in line and str(link) in line and str(target) in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ['link']


def _foreign_copy(results: Path, as_name: str = 'baseline__seed0__s1.json') -> Path:
    """A committed longtail_synth result file copied into a smoke results folder under a smoke name."""
    from npe.paths import repo_root

    source = repo_root() / 'results' / 'longtail_synth' / 'baseline__seed0__s1.json'
    folder = results / 'smoke'
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / as_name
    target.write_bytes(source.read_bytes())
    return target


def test_foreign_result_file_stops_the_driver_by_name(tmp_path):
    """Before: "done, skipped", the other recipe's numbers kept as smoke's baseline."""
    foreign = _foreign_copy(tmp_path / 'r')
    proc = subprocess.run([str(BIN / 'npe-repro'), 'smoke', '--variants', 'baseline', '--results-dir',
                           str(tmp_path / 'r'), '--work-dir', str(tmp_path / 'w'), '--data-root',
                           str(tmp_path / 'd'), '--no-tables'],
                          capture_output=True, text=True, env=env(), timeout=600)
    line = _one_line_error(proc)
    assert str(foreign) in line and 'longtail_synth' in line and 'move it to' in line, line
    assert 'done, skipped' not in proc.stdout
    assert not (tmp_path / 'w').exists() and foreign.read_bytes() == _foreign_copy(tmp_path / 'x').read_bytes()


def test_foreign_result_file_is_named_by_tables_and_compare(tmp_path, capsys):
    from npe.cli import tables as tables_cli

    foreign = _foreign_copy(tmp_path / 'r')
    for argv in (['--results-dir', str(tmp_path / 'r'), '--recipe', 'smoke', '--no-figures'],
                 ['--results-dir', str(tmp_path / 'r'), '--no-figures']):
        with pytest.raises(SystemExit) as exc:
            tables_cli.main(argv)
        assert exc.value.code == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and str(foreign) in err[0] and 'recipe longtail_synth' in err[0], err
    # --compare: the other side's folder is checked the same way.
    good = tmp_path / 'good' / 'smoke'
    good.mkdir(parents=True)
    with pytest.raises(SystemExit) as exc:
        tables_cli.main(['--results-dir', str(tmp_path / 'good'), '--recipe', 'smoke', '--no-figures',
                         '--compare', str(tmp_path / 'r'), '-q'])
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and str(foreign) in err[0], err


def test_result_file_of_another_dataset_is_refused_by_name(tmp_path):
    """A file renamed inside too (recipe name edited) still records its dataset."""
    import json as _json

    foreign = _foreign_copy(tmp_path / 'r')
    data = _json.loads(foreign.read_text())
    data['recipe']['name'] = 'smoke'
    foreign.write_text(_json.dumps(data))
    with pytest.raises(result_files.ForeignResultError, match="dataset 'longtail_synth'"):
        result_files.check_recipe_folder(tmp_path / 'r', load_recipe('smoke', resolve=False))
    with pytest.raises(result_files.ForeignResultError, match=str(foreign)):
        result_files.read_results(tmp_path / 'r', 'smoke', 'smoke')


@pytest.mark.parametrize('where', [['--slurm', '--partition', 'debug'], ['--task', '0']])
def test_compare_with_slurm_is_one_line_and_submits_nothing(tmp_path, where):
    """Issue 22: ``--compare`` with ``--slurm`` was silently not run. Refused before anything is
    submitted or trained (no sbatch is needed to see it), naming the command to run afterwards."""
    (tmp_path / 'other' / 'smoke').mkdir(parents=True)
    proc = subprocess.run([str(BIN / 'npe-repro'), 'smoke', '--compare', str(tmp_path / 'other'),
                           '--results-dir', str(tmp_path / 'r'), '--work-dir', str(tmp_path / 'w'),
                           '--data-root', str(tmp_path / 'd'), *where],
                          capture_output=True, text=True, env=env(), timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith('error: --compare is not run with'), proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and 'npe-tables' in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['other']


def test_another_driver_with_another_work_dir_is_warned_of(tmp_path):
    """Issue 18: two drivers on one results folder with different work dirs both trained everything
    without a word. Driver A is a real process that registered and runs on; driver B a real
    npe-repro that stops at the data step (offline, data missing), after the folder checks."""
    results = tmp_path / 'results'
    (results / 'stare_unet').mkdir(parents=True)
    code = ('import sys, time; from pathlib import Path; from npe.preflight import note_driver; '
            'note_driver(Path(sys.argv[1]), Path(sys.argv[2])); print("ready", flush=True); time.sleep(600)')
    a = subprocess.Popen([sys.executable, '-c', code, str(results / 'stare_unet'), str(tmp_path / 'work_a')],
                         stdout=subprocess.PIPE, text=True, env=env())

    def driver_b(work: str) -> str:
        proc = subprocess.run([str(BIN / 'npe-repro'), 'stare_unet', '--offline', '--results-dir', str(results),
                               '--work-dir', str(tmp_path / work), '--data-root', str(tmp_path / 'data')],
                              capture_output=True, text=True, env=env(), timeout=300)
        assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr
        return proc.stderr
    try:
        assert a.stdout.readline() == 'ready\n'
        warned = driver_b('work_b')
        assert f'warning: another npe-repro (process {a.pid} ' in warned and str(tmp_path / 'work_a') in warned
        assert driver_b('work_a').count('warning:') == 0    # control: the same work dir shares the locks
    finally:
        a.kill()
        a.wait()
    assert driver_b('work_b').count('warning:') == 0        # a killed driver's record is stale ...
    assert [p.name for p in (results / 'stare_unet').iterdir()] == []   # ... removed; B's own at its exit
