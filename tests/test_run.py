"""npe-repro end to end on the built-in smoke recipe: results, tables, interruption and resume."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from npe.recipes import load_recipe
from npe.run import plan_runs

BIN = Path(sys.executable).parent


def env_for(tmp: Path) -> dict:
    env = dict(os.environ)
    env.update(NPE_DATA_ROOT=str(tmp / 'data'), NPE_RESULTS_DIR=str(tmp / 'results'),
               NPE_WORK_DIR=str(tmp / 'work'), PYTHONUNBUFFERED='1')
    env.pop('NPE_MIRROR', None)
    return env


def repro(tmp: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / 'npe-repro'), *args], env=env_for(tmp), capture_output=True,
                          text=True, timeout=timeout)


def test_plan_groups_variants_by_training():
    recipe = load_recipe('stare_ablations')
    jobs = plan_runs(recipe)
    keys = {(j.train_key, j.seed) for j in jobs}
    assert len(keys) == len(jobs)  # every distinct training configuration once per seed
    assert len(jobs) == len(recipe.train_groups()) * len(recipe.seeds)
    only = plan_runs(recipe, variants=['baseline'], seeds=[1])
    assert len(only) == 1 and only[0].seed == 1 and only[0].variants[0].name == 'baseline'


@pytest.mark.parametrize('recipe', ['stare_unet', 'ade20k_pspnet_r50'])
def test_dry_run_prints_the_full_plan(tmp_path, recipe):
    proc = repro(tmp_path, recipe, '--dry-run')
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    rec = load_recipe(recipe)
    assert f'training runs ({len(rec.seeds) * len(rec.train_groups())})' in out
    assert rec.load_from.url in out
    assert 'fetch http' in out and 'to prepare' in out
    assert 'cost:' in out and 'training iterations' in out
    assert 'iterations x batch 16' in out
    assert not (tmp_path / 'work').exists() and not (tmp_path / 'results').exists()
    assert not (tmp_path / 'data').exists()


def test_invalid_recipe_starts_nothing(tmp_path):
    bad = tmp_path / 'bad.yaml'
    text = (Path(load_recipe('smoke').path).read_text()).replace('name: smoke', 'name: bad')
    bad.write_text(text + 'learning_rate: 0.1\n')
    proc = repro(tmp_path, str(bad))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'bad.yaml' in lines[0] and 'learning_rate' in lines[0]
    assert not (tmp_path / 'work').exists() and not (tmp_path / 'data').exists()


def test_unknown_variant_is_one_line(tmp_path):
    proc = repro(tmp_path, 'smoke', '--variants', 'nope')
    assert proc.returncode == 2 and proc.stderr.startswith('error:') and 'nope' in proc.stderr


@pytest.mark.integration
def test_smoke_end_to_end_interrupted_and_resumed(tmp_path):
    work = tmp_path / 'work' / 'smoke'
    results = tmp_path / 'results' / 'smoke'
    # First run: interrupted (Ctrl-C) while the second training (npe1) is under way, after its first
    # checkpoint.
    proc = subprocess.Popen([str(BIN / 'npe-repro'), 'smoke'], env=env_for(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 400
    try:
        while time.time() < deadline and proc.poll() is None:
            if list((work / 'npe1__seed0').glob('iter_*.pth')):
                break
            time.sleep(0.05)
        assert proc.poll() is None, 'the run ended before it could be interrupted'
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == 130, out
    assert out.strip().splitlines()[-1].startswith('interrupted; finished runs are kept')
    baseline_files = sorted(results.glob('baseline__*.json')) + sorted(results.glob('counted_la__*.json'))
    assert [p.name for p in baseline_files] == [
        'baseline__seed0__s1.json', 'counted_la__seed0__s1.json', 'counted_la__seed0__s2.json']
    assert not list(results.glob('npe1__*.json'))
    stamps = {p.name: p.stat().st_mtime_ns for p in baseline_files}
    # progress while it trained: plain lines (not a terminal), the baseline's run to its end
    assert 'iteration 20/20 (100%)' in out and 'ETA ' in out and 'loss ' in out
    assert not list(work.glob('.*.lock'))   # the baseline's lock file went with its release
    import torch
    part_one = max(torch.load(p, weights_only=False)['npe_resume']['wall_time_s']
                   for p in (work / 'npe1__seed0').glob('iter_*.pth'))

    # Second run: finishes, skips the baseline, resumes npe1 from its checkpoint.
    done = repro(tmp_path, 'smoke')
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'baseline seed 0: done, skipped' in done.stdout
    assert {p.name: p.stat().st_mtime_ns for p in baseline_files} == stamps
    marker = json.loads((work / 'npe1__seed0' / 'npe_train_done.json').read_text())
    assert marker['resumed_from'] and 'iter_' in marker['resumed_from']
    assert marker['iterations'] == load_recipe('smoke').max_iters
    resumed_at = int(marker['resumed_from'].rsplit('iter_', 1)[1].split('.')[0])
    assert f'resuming from iteration {resumed_at} of {marker["iterations"]}' in done.stdout
    # the training's time is both parts: the first to its checkpoint, and the resumed one
    assert marker['wall_time_s'] == pytest.approx(part_one + marker['wall_time_this_part_s'], abs=0.02)
    assert not list(work.glob('.*.lock'))
    assert 'result files: ' in done.stdout and 'tables: ' in done.stdout

    files = sorted(p.name for p in results.glob('*.json'))
    assert files == ['baseline__seed0__s1.json', 'counted_la__seed0__s1.json',
                     'counted_la__seed0__s2.json', 'npe1__seed0__s1.json', 'npe1__seed0__s2.json',
                     'npe_counted_la__seed0__s1.json', 'npe_counted_la__seed0__s2.json',
                     'npe_main_only__seed0__sinf.json']
    npe1 = json.loads((results / 'npe1__seed0__s2.json').read_text())
    assert npe1['status'] == 'ok' and npe1['schema'] == 'npe-result/1'
    assert npe1['scale_factor'] == 2.0 and npe1['protocol'] == 'upstream'
    assert set(npe1['metrics']) >= {'mIoU', 'mDice', 'mAcc', 'aAcc'}
    assert len(npe1['per_class']['IoU']) == 3 and len(npe1['learned_prior']) == 3
    assert abs(sum(npe1['class_pixel_share']) - 1) < 1e-9
    assert npe1['environment']['mmseg'] == '1.2.2' and npe1['log']['loss']
    baseline = json.loads((results / 'baseline__seed0__s1.json').read_text())
    assert baseline['log']['loss'] and baseline['log']['loss'] != npe1['log']['loss']
    la = json.loads((results / 'counted_la__seed0__s1.json').read_text())
    assert la['adjustment'] == 'counted_la' and la['learned_prior'] is None
    # Decomposition rows: the NPE model's main head alone (s = inf), and adjusted by counted priors.
    main = json.loads((results / 'npe_main_only__seed0__sinf.json').read_text())
    assert main['scale_factor'] == 'inf' and main['adjustment'] == 'none'
    assert main['options']['num_pem'] == 1 and main['checkpoint'] == npe1['checkpoint']
    npe_la = json.loads((results / 'npe_counted_la__seed0__s2.json').read_text())
    assert npe_la['adjustment'] == 'counted_la' and npe_la['options']['num_pem'] == 1
    # confusion counts are in every result file; all rows of a model see the same pixels
    assert sum(map(sum, main['per_class']['confusion'])) == sum(map(sum, npe1['per_class']['confusion']))

    # Examples for the qualitative figure: first seed, baseline and NPE-LA at its first s (no auto here).
    index = json.loads((results / 'examples' / 'index.json').read_text())
    assert 1 <= len(index['images']) <= 4 and set(index['rows']) == {'baseline', 'npe1, s=1'}
    for sub in ('image', 'gt', *index['rows'].values()):
        assert all((results / 'examples' / sub / f'{n}.png').is_file() for n in index['images'])

    # Tables come from the result files alone, and rebuild byte for byte.
    tables = tmp_path / 'results' / 'tables'
    md = (tables / 'smoke.md').read_text()
    assert 'npe1' in md and 'counted_la' in md
    assert 'Runs: 8 expected, 8 ok, 0 failed, 0 missing.' in md
    assert 'npe_main_only' in md and 'main head only (npe1 model)' in md
    assert (tables / 'smoke_examples.png').is_file()
    before = {p.name: p.read_bytes() for p in sorted(tables.iterdir())}
    shutil.rmtree(tables)
    rebuilt = subprocess.run([str(BIN / 'npe-tables')], env=env_for(tmp_path), capture_output=True,
                             text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr
    after = {p.name: p.read_bytes() for p in sorted(tables.iterdir())}
    assert after.keys() == before.keys() and after == before

    # A third run has nothing left to do.
    again = repro(tmp_path, 'smoke', '--no-tables')
    assert again.returncode == 0 and again.stdout.count('done, skipped') == 2


def test_offline_lists_every_missing_input_and_starts_nothing(tmp_path):
    proc = repro(tmp_path, 'stare_unet', '--offline')
    assert proc.returncode == 2
    err = proc.stderr
    assert err.startswith('error: ') and 'Traceback' not in err
    for name in ('stare-images.tar', 'labels-ah.tar', 'labels-vk.tar',
                 'fcn_unet_s5-d16_128x128_40k_stare_20201223_191051-7d77e78b.pth'):
        assert name in err
    assert str(tmp_path / 'data' / 'downloads' / 'stare-images.tar') in err
    assert not (tmp_path / 'work').exists() and not (tmp_path / 'results').exists()
    assert not (tmp_path / 'data' / 'STARE').exists()


def test_run_recipe_in_a_notebook_prints_nothing_and_logs_its_progress(tmp_path, capsys, caplog):
    """``npe.run_recipe`` called from Python (a notebook): nothing on stdout/stderr by default (the
    progress lines are logging records of ``npe.run``, which caplog captures; MMEngine's log goes to
    the work dir's npe-repro.log); a second call finds the files and logs that it skips them."""
    import logging

    import npe

    dirs = dict(data_root=tmp_path / 'data', results_dir=tmp_path / 'results', work_dir=tmp_path / 'work')
    caplog.set_level(logging.INFO, logger='npe')
    outcome = npe.run_recipe('smoke', variants=['baseline'], tables=False, **dirs)
    assert outcome.failures == 0 and outcome.ok
    # the records of what it ran: baseline s=1, counted LA s=1 and 2, as npe.load_results gives them
    assert sorted((r['variant'], r['scale_factor']) for r in outcome.records) == \
        [('baseline', 1.0), ('counted_la', 1.0), ('counted_la', 2.0)]
    assert outcome.records == npe.load_results('smoke', dirs['results_dir'])
    out, err = capsys.readouterr()
    assert (out, err) == ('', ''), (out, err)
    lines = [r.getMessage() for r in caplog.records if r.name == 'npe.run']
    assert lines[0] == f'[1/1] baseline seed 0: training in {tmp_path / "work" / "smoke" / "baseline__seed0"}'
    assert sum(line.startswith('NPE_RESULT ') for line in lines) == 3   # baseline s=1, counted LA s=1, 2
    assert lines[-1].startswith('[1/1] baseline seed 0: 3 result files written (training ')
    assert 'Iter(train)' in (tmp_path / 'work' / 'smoke' / 'baseline__seed0' / 'npe-repro.log').read_text()
    caplog.clear()
    assert npe.run_recipe('smoke', variants=['baseline'], tables=False, **dirs).records == outcome.records
    assert [r.getMessage() for r in caplog.records] == ['[1/1] baseline seed 0: done, skipped']
    assert capsys.readouterr() == ('', '')


def test_finished_recipe_prints_the_compact_summary_and_prepares_no_data(tmp_path):
    """What scripts/repro.sh does in a clone: the committed longtail_synth results count as finished
    runs, so nothing is generated (no data folder) and the end is the compact summary, at most 100
    columns, naming where the result files, tables and figures are."""
    shutil.copytree(Path(__file__).resolve().parents[1] / 'results' / 'longtail_synth',
                    tmp_path / 'results' / 'longtail_synth')
    proc = subprocess.run([str(BIN / 'npe-repro'), 'longtail_synth'], env=env_for(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.count('done, skipped') == len(plan_runs(load_recipe('longtail_synth')))
    assert not (tmp_path / 'data').exists()   # the old driver generated the set before skipping
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    assert '|' not in out   # not the Markdown table (that one is in the .md file)
    head = next(i for i, line in enumerate(lines) if line.startswith('longtail_synth: mIoU'))
    assert lines[head + 1].split() == ['row', 'method', 's', 'mIoU', 'Δ', 'mIoU', 'tail', 'mIoU', 'n']
    assert any(line.startswith('baseline ') and '—' in line for line in lines)
    assert 'result files: results/longtail_synth/ (51 files)' in out
    for name in ('longtail_synth.md', 'longtail_synth.tex', 'longtail_synth.csv', 'longtail_synth_paired.csv',
                 'longtail_synth_loss.png', 'longtail_synth_examples.png'):
        assert f'results/tables/{name}' in out, name


@pytest.mark.integration
def test_quick_recipe_shows_methods_that_differ(tmp_path):
    """``npe-repro quick`` (issue 21): within minutes on CPU the baseline, counted LA and NPE-LA give
    three different numbers (smoke's tiny model gives one number for most rows: it shows the pipeline
    runs, not the method), and counted LA lifts the rare classes of the long-tailed set."""
    proc = repro(tmp_path, 'quick', timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = {p.name: json.loads(p.read_text()) for p in (tmp_path / 'results' / 'quick').glob('*.json')}
    assert sorted(files) == ['baseline__seed0__s1.json', 'counted_la__seed0__s2.json', 'npe1__seed0__s2.json',
                             'npe_counted_la__seed0__s2.json', 'npe_main_only__seed0__sinf.json']
    miou = {name.split('__')[0]: data['metrics']['mIoU'] for name, data in files.items()}
    assert len({round(miou[k], 2) for k in ('baseline', 'counted_la', 'npe1')}) == 3, miou
    assert miou['counted_la'] > miou['baseline'] + 2, miou
    assert files['npe1__seed0__s2.json']['learned_prior'], 'the PEM was trained and its prior recorded'
