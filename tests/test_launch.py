"""Scale-out (npe/launch.py): launcher environment checks, the batch split, DDP through a real
``torchrun``: on CPU 2 processes (gloo, BN); on a CUDA machine one process per GPU, at most 2 (NCCL,
SyncBN), so a one-GPU machine runs DDP with NCCL on one process. Evaluation after and under DDP.
Nothing here skips on either kind of machine: each device-dependent test asserts what that device
must do (docs: tests/README.md, "Skips")."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from npe import launch
from npe.errors import ConfigError

BIN = Path(sys.executable).parent
CUDA = launch._cuda()
#: torchrun's process count: CPU processes here; GPUs (one each, NCCL) on a CUDA machine
NPROC = min(2, __import__('torch').cuda.device_count()) if CUDA else 2
DEVICE = 'cuda' if CUDA else 'cpu'
LAUNCH_VARS = [v for names in launch.LAUNCHER_ENV.values() for v in names]


def clean_env(tmp: Path, **extra: str) -> dict:
    """The environment of a command started by hand: no launcher variables, the test's folders."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS and not k.startswith('SLURM_')}
    env.update(NPE_DATA_ROOT=str(tmp / 'data'), NPE_RESULTS_DIR=str(tmp / 'results'),
               NPE_WORK_DIR=str(tmp / 'work'), PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', **extra)
    env.pop('NPE_MIRROR', None)
    return env


# --------------------------------------------------------------------------- outside the launcher
@pytest.mark.parametrize('launcher, needle', [('pytorch', 'torchrun'), ('slurm', 'srun')])
def test_launcher_outside_its_environment_is_one_line(tmp_path, launcher, needle):
    proc = subprocess.run([str(BIN / 'npe-train'), 'npe::smoke_unet.py', '--launcher', launcher,
                           '--work-dir', str(tmp_path / 'w')], env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f'error: --launcher {launcher} was started outside its launcher')
    assert needle in lines[0] and 'Traceback' not in proc.stderr and 'KeyError' not in proc.stderr
    assert not (tmp_path / 'w').exists()


def test_check_launcher_environment_names_what_is_missing(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match='no SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST'):
        launch.check_launcher_environment('slurm')
    launch.check_launcher_environment('none')  # nothing needed
    monkeypatch.setenv('WORLD_SIZE', '4')
    assert launch.world_size('pytorch') == 4 and launch.world_size('none') == 1


# --------------------------------------------------------------------------- batch split
def _cfg(batch: int = 16, norm: str = 'SyncBN'):
    from mmengine.config import Config

    return Config(dict(train_dataloader=dict(batch_size=batch),
                       model=dict(backbone=dict(norm_cfg=dict(type=norm, requires_grad=True)),
                                  decode_head=[dict(norm_cfg=dict(type=norm))]),
                       npe=dict()))


def test_total_batch_is_split_over_the_processes():
    cfg = _cfg()
    launch.distribute(cfg, 'pytorch', 4)
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.npe.distributed == dict(launcher='pytorch', world_size=4, batch_per_process=4,
                                       total_batch=16)
    # the DDP settings have one home, apply_runtime (tests/cli/test_train_cli.py checks a built config)
    assert 'model_wrapper_cfg' not in cfg


def test_ddp_settings_under_a_launcher():
    cfg = _cfg()
    launch.ddp_settings(cfg)
    assert cfg.model_wrapper_cfg.find_unused_parameters is True
    if not launch._cuda():  # gloo cannot run SyncBN; CPU modules take no device list
        assert cfg.model.backbone.norm_cfg.type == 'BN' and cfg.model.decode_head[0].norm_cfg.type == 'BN'
        assert cfg.model_wrapper_cfg.device_ids is None and cfg.env_cfg.dist_cfg.backend == 'gloo'


def test_batch_per_process_keeps_the_per_process_batch():
    cfg = _cfg()
    launch.distribute(cfg, 'pytorch', 3, batch_per_process=8)
    assert cfg.train_dataloader.batch_size == 8 and cfg.npe.distributed.total_batch == 24


def test_one_process_records_world_size_one_and_keeps_syncbn():
    cfg = _cfg()
    launch.distribute(cfg, 'none', 1)
    assert cfg.train_dataloader.batch_size == 16 and cfg.npe.distributed.world_size == 1
    assert 'model_wrapper_cfg' not in cfg  # MMEngine reverts SyncBN itself when not distributed
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'


def test_uneven_split_is_a_clear_error():
    with pytest.raises(ConfigError, match='does not split evenly over 3 processes.*batch_per_process'):
        launch.distribute(_cfg(), 'pytorch', 3)
    with pytest.raises(ConfigError, match='batch_per_process must be >= 1') as exc:
        launch.distribute(_cfg(), 'pytorch', 2, batch_per_process=0)
    # the library names its argument; a command shows its flag (npe.errors.cli_entry prints this)
    assert str(exc.value) == 'batch_per_process must be >= 1, got 0'
    assert exc.value.command_message == '--batch-per-process must be >= 1, got 0'


def test_a_command_shows_the_flag_where_the_library_names_its_argument(capsys):
    from npe.errors import cli_entry

    @cli_entry
    def main() -> int:
        launch.distribute(_cfg(), 'pytorch', 2, batch_per_process=0)
        return 0

    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == 'error: --batch-per-process must be >= 1, got 0\n'


def test_repro_bad_scale_out_input_is_one_line(tmp_path):
    proc = subprocess.run([str(BIN / 'npe-repro'), 'smoke', '--gpus', '3', '--dry-run'],
                          env=clean_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and 'batch 16 does not split evenly over 3 processes' in proc.stderr
    proc = subprocess.run([str(BIN / 'npe-repro'), 'smoke', '--gpus', '4', '--dry-run'],
                          env=clean_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert 'training runs (2), 20 iterations x batch 16 (4 processes x 4) each' in proc.stdout
    proc = subprocess.run([str(BIN / 'npe-repro'), 'smoke', '--task', '7'], env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count('\n') == 1, proc.stderr
    assert '--task 7 is out of range: the plan has 2 trainings (0..1)' in proc.stderr


def test_more_processes_than_gpus_is_one_line_on_cuda_any_count_on_cpu():
    """Two ranks on one GPU would stop inside NCCL's first collective: refused in one line on a CUDA
    machine; without CUDA any count is a count of CPU processes."""
    if not CUDA:
        assert launch.check_visible_gpus(64, '--gpus 64', 'give a smaller --gpus') is None
        return
    n = __import__('torch').cuda.device_count()
    with pytest.raises(ConfigError, match=f'--gpus {n + 1} needs {n + 1} GPUs, .* has {n} visible'):
        launch.check_visible_gpus(n + 1, f'--gpus {n + 1}', 'give a smaller --gpus')
    assert launch.check_visible_gpus(n, f'--gpus {n}', 'give a smaller --gpus') is None


def test_amp_is_one_line_on_cpu_and_mixed_precision_on_cuda(tmp_path):
    """``npe-repro --amp``: without CUDA one line before any work; with CUDA a real AMP training whose
    result file records the GPU (no silent CPU fallback) and the AMP dtype."""
    recipe = tmp_path / 'smoke_amp.yaml'
    recipe.write_text(DDP_RECIPE.replace('name: smoke_ddp', 'name: smoke_amp').replace('max_iters: 8', 'max_iters: 4')
                      .replace('[1, 2, auto]', '[1]'))
    proc = subprocess.run([str(BIN / 'npe-repro'), str(recipe), '--amp'], env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=600)
    if not CUDA:
        assert proc.returncode == 2 and proc.stderr.count('\n') == 1, proc.stderr
        assert proc.stderr.startswith('error: --amp needs a GPU')
        assert not (tmp_path / 'work').exists() and not (tmp_path / 'results').exists()
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / 'results' / 'smoke_amp' / 'npe1__seed0__s1.json').read_text())
    assert data['training_device'].startswith('cuda') and data['status'] == 'ok'
    run = json.loads((tmp_path / 'work' / 'smoke_amp' / 'npe1__seed0' / 'npe_train.json').read_text())
    assert run['npe']['amp'] in ('float16', 'bfloat16'), run['npe']
    assert all(v == v for _, v in data['log']['loss'])  # no NaN loss under mixed precision


# --------------------------------------------------------------------------- real torchrun
DDP_RECIPE = """\
decomposition: false
name: smoke_ddp
title: "smoke under DDP: NPE (1 PEM), s in {1, 2, auto}"
paper_table: null
dataset: smoke
base_config: npe::smoke_unet.py
load_from: null
protocol: fixed
metrics: [mIoU, mDice, mAcc, aAcc]
seeds: [0]
max_iters: 8
counted_la: false
auto_scale: {metric: mIoU, candidates: [1, 2]}
variants:
  - {name: npe1, num_pem: 1, scale_factors: [1, 2, auto]}
"""


@pytest.mark.integration
def test_repro_gpus_trains_under_torchrun_and_evaluates_every_s(tmp_path):
    """``npe-repro --gpus N``: torchrun, MMEngine's pytorch launcher (N = 2 gloo processes on CPU, one
    NCCL process per GPU on a CUDA machine); the training's progress lines on the driver's console;
    result files at s = 1, 2 and auto record the world size, the images per process and the device
    the training really used."""
    recipe = tmp_path / 'smoke_ddp.yaml'
    recipe.write_text(DDP_RECIPE)
    proc = subprocess.run([str(BIN / 'npe-repro'), str(recipe), '--gpus', str(NPROC)], env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=600)
    log = tmp_path / 'work' / 'smoke_ddp' / 'npe1__seed0' / 'npe-repro.log'
    assert proc.returncode == 0, proc.stderr + (log.read_text()[-3000:] if log.is_file() else '')
    text = log.read_text()
    assert 'Distributed training: True' in text and 'Distributed launcher: pytorch' in text
    # the training's progress on the driver's console, as without --gpus: rank 0's lines, each once
    progress = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith('iteration ')]
    assert progress and progress[-1].startswith('iteration 8/8 (100%)'), proc.stdout[-3000:]
    assert len(progress) == len(set(progress)) and 'iteration 8/8' not in text
    files = sorted((tmp_path / 'results' / 'smoke_ddp').glob('*.json'))
    assert [f.name for f in files] == ['npe1__seed0__s1.json', 'npe1__seed0__s2.json',
                                       'npe1__seed0__sauto.json']
    for f in files:
        data = json.loads(f.read_text())
        assert data['status'] == 'ok' and data['protocol'] == 'fixed'
        assert data['distributed'] == dict(launcher='pytorch', world_size=NPROC, batch_per_process=16 // NPROC,
                                           total_batch=16)
        assert data['training_device'].startswith(DEVICE)
        assert data['iterations'] == 8 and 0 <= data['metrics']['mIoU'] <= 100
        assert data['learned_prior'] and len(data['learned_prior']) == 3  # the PEM was trained
    auto = json.loads(files[-1].read_text())
    assert set(auto['auto_scale']['candidates']) == {'1', '2'} and auto['scale_factor_value'] in (1, 2)
    assert (tmp_path / 'results' / 'tables' / 'smoke_ddp.md').is_file()


@pytest.mark.integration
def test_npe_train_under_torchrun_upstream_then_npe_test_under_ddp(tmp_path):
    """``torchrun --nproc-per-node N npe-train --launcher pytorch`` (upstream protocol, frozen
    backbone), then ``npe-test`` of the DDP checkpoint in one process and under torchrun."""
    env = clean_env(tmp_path)
    subprocess.run([str(BIN / 'npe-data'), 'prepare', 'smoke'], env=env, check=True,
                   capture_output=True, timeout=300)
    work = tmp_path / 'w'
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', str(NPROC)]
    proc = subprocess.run([*torchrun, str(BIN / 'npe-train'), 'npe::smoke_unet.py', '--launcher', 'pytorch',
                           '--work-dir', str(work), '--freeze-backbone', '--seed', '0',
                           '--cfg-options', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4'],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count('npe-train: 4 iterations') == 1  # rank 0 reports
    run = json.loads((work / 'npe_train.json').read_text())
    assert run['npe']['distributed'] == dict(launcher='pytorch', world_size=NPROC, batch_per_process=16 // NPROC,
                                             total_batch=16)
    assert run['npe']['protocol'] == 'upstream' and (work / 'iter_4.pth').is_file()

    test = [str(BIN / 'npe-test'), str(work), '--scale-factor', '1', '2', '--out']
    single = subprocess.run([*test, str(tmp_path / 'one.json')], env=env, capture_output=True, text=True,
                            timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = subprocess.run([*torchrun, *test, str(tmp_path / 'two.json'), '--launcher', 'pytorch'], env=env,
                         capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    one, two = (json.loads((tmp_path / n).read_text()) for n in ('one.json', 'two.json'))
    assert one['results'][0]['num_images'] == two['results'][0]['num_images'] > 0
    assert [r['scale_factor'] for r in one['results']] == [1.0, 2.0]
    # the DDP sampler splits the validation images over the ranks and collects them back: same numbers
    assert [r['metrics']['mIoU'] for r in one['results']] == [r['metrics']['mIoU'] for r in two['results']]


# --------------------------------------------------------------------------- Slurm
def test_sbatch_scripts_are_one_array_and_a_tables_job(tmp_path):
    train, tables = launch.write_sbatch_scripts(
        tmp_path / 's', recipe_name='smoke', tasks=3, task_command=['python', '-m', 'npe', 'my recipe.yaml'],
        tables_command=['python', '-m', 'npe.cli.tables', '--recipe', 'smoke'], gpus=2)
    text = train.read_text()
    assert text.startswith('#!/bin/bash\n') and '#SBATCH --array=0-2' in text
    assert launch.array_spec([4, 1, 4]) == '1,4' and launch.array_spec(3) == launch.array_spec([2, 0, 1]) == '0-2'
    assert launch.array_spec([0, 1, 2, 5, 7, 8]) == '0-2,5,7-8' and launch.array_spec([3]) == '3'
    assert '#SBATCH --gres=gpu:2' in text and f'#SBATCH --output={tmp_path / "s"}/train-%A_%a.out' in text
    assert "exec python -m npe 'my recipe.yaml' --task \"$SLURM_ARRAY_TASK_ID\"" in text
    assert 'exec python -m npe.cli.tables --recipe smoke' in tables.read_text()
    assert '--array' not in tables.read_text() and os.access(train, os.X_OK)


def test_slurm_without_sbatch_is_one_line(tmp_path):
    env = clean_env(tmp_path)
    env['PATH'] = str(BIN)  # the venv's commands only: no sbatch
    proc = subprocess.run([str(BIN / 'npe-repro'), 'smoke', '--slurm', '--time', '5'], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count('\n') == 1, proc.stderr
    assert proc.stderr.startswith('error: --slurm: no sbatch on PATH')


@pytest.mark.integration
def test_repro_slurm_on_a_real_one_node_cluster(tmp_path, local_smoke):
    """``npe-repro smoke --per-s --slurm``: one job array (a task per training), the tables job
    afterany it; each task runs with the driver's flags (parsed back by npe-repro's parser); the same
    result files, metrics and table as a local run."""
    import re
    import shlex

    from npe.cli.repro import build_parser
    from npe.driver_options import DriverOptions

    from npe.recipes import load_recipe
    from npe.run import plan_runs
    from slurm_cluster import OneNodeCluster

    recipe = load_recipe('smoke')
    jobs = plan_runs(recipe)
    expected = sorted(f'{v}__seed{j.seed}__s{s:g}.json' for j in jobs for v, s in j.expected(recipe))
    with OneNodeCluster() as cluster:
        env = dict(clean_env(tmp_path), SLURM_CONF=cluster.env['SLURM_CONF'])
        proc = subprocess.run([str(BIN / 'npe-repro'), 'smoke', '--per-s', '--slurm', '--time', '20'],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        script = next((tmp_path / 'work' / 'smoke' / 'slurm').glob('*/train.sbatch')).read_text()
        task = shlex.split(next(x for x in script.splitlines() if x.startswith('exec ')))[4:-2]
        assert DriverOptions.from_namespace(build_parser().parse_args(task)) == DriverOptions(
            per_s=True, offline=True, tables=False, data_root=str(tmp_path / 'data'),
            results_dir=str(tmp_path / 'results'), work_dir=str(tmp_path / 'work')), script
        said = ' '.join(proc.stdout.split())  # the console may wrap a long line
        found = re.search(r'job array (\d+) \((\d+) training\(s\): plan index 0-1;.*tables job (\d+) after it', said)
        assert found, proc.stdout
        array_id, n, tables_id = found.group(1), int(found.group(2)), found.group(3)
        assert n == len(jobs) == 2
        show = subprocess.run(['scontrol', 'show', 'job', tables_id], env=cluster.env,
                              capture_output=True, text=True).stdout
        assert f'afterany:{array_id}' in show, show
        cluster.wait_for([array_id, tables_id])
        states = cluster.job_states(array_id)
        assert states == {f'{array_id}_{i}': 'COMPLETED' for i in range(n)}, states
        assert cluster.job_states(tables_id) == {tables_id: 'COMPLETED'}
    results = tmp_path / 'results' / 'smoke'
    assert sorted(p.name for p in results.glob('*.json')) == expected
    for path in results.glob('*.json'):
        data = json.loads(path.read_text())
        assert data['status'] == 'ok' and data['distributed']['world_size'] == 1
    table = (tmp_path / 'results' / 'tables' / 'smoke.md').read_text()
    assert f'Runs: {len(expected)} expected, {len(expected)} ok, 0 failed, 0 missing.' in table
    outputs = sorted((tmp_path / 'work' / 'smoke' / 'slurm').glob('*/*.out'))
    assert len(outputs) == n + 1  # a log per array task and one of the tables job
    # metric by metric against the local run (same machine, seed and data)
    local = {p.name: json.loads(p.read_text()) for p in (local_smoke / 'results' / 'smoke').glob('*.json')}
    assert sorted(local) == expected
    for path in results.glob('*.json'):
        ours, theirs = json.loads(path.read_text())['metrics'], local[path.name]['metrics']
        assert ours.keys() == theirs.keys() and ours
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], abs=1e-4), (path.name, key, ours[key], theirs[key])


def test_repro_slurm_task_submits_that_training_alone(tmp_path, local_smoke):
    """``npe-repro smoke --slurm --task 1``: an array of the one index 1, whose task trains plan entry
    1 (not entry 0, as an array numbered from 0 would) and writes only its result files, with the
    local run's metrics; no tables job."""
    import re

    from npe.recipes import load_recipe
    from npe.run import plan_runs
    from slurm_cluster import OneNodeCluster

    recipe = load_recipe('smoke')
    job = plan_runs(recipe)[1]
    expected = sorted(f'{v}__seed{job.seed}__s{s:g}.json' for v, s in job.expected(recipe))
    with OneNodeCluster() as cluster:
        env = dict(clean_env(tmp_path), SLURM_CONF=cluster.env['SLURM_CONF'])
        proc = subprocess.run([str(BIN / 'npe-repro'), 'smoke', '--task', '1', '--slurm', '--time', '20'],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        script = next((tmp_path / 'work' / 'smoke' / 'slurm').glob('*/train.sbatch')).read_text()
        assert '#SBATCH --array=1\n' in script, script
        said = ' '.join(proc.stdout.split())  # the console may wrap a long line
        found = re.search(r'job array (\d+) \(1 training\(s\): plan index 1;.*tables job - after it', said)
        assert found, proc.stdout
        cluster.wait_for([found.group(1)])
        assert cluster.job_states(found.group(1)) == {f'{found.group(1)}_1': 'COMPLETED'}
    results = tmp_path / 'results' / 'smoke'
    assert sorted(p.name for p in results.glob('*.json')) == expected and expected
    assert not (tmp_path / 'results' / 'tables').exists()
    for path in results.glob('*.json'):
        ours = json.loads(path.read_text())['metrics']
        theirs = json.loads((local_smoke / 'results' / 'smoke' / path.name).read_text())['metrics']
        assert ours == pytest.approx(theirs, abs=1e-4), path.name


@pytest.mark.integration
def test_npe_train_launcher_slurm_under_srun(tmp_path):
    """MMEngine's ``slurm`` launcher: ``srun --ntasks 2 npe-train --launcher slurm`` on the cluster
    (gloo on CPU, the group started from SLURM_PROCID / SLURM_NTASKS / SLURM_NODELIST)."""
    from slurm_cluster import OneNodeCluster

    env = clean_env(tmp_path)
    subprocess.run([str(BIN / 'npe-data'), 'prepare', 'smoke'], env=env, check=True,
                   capture_output=True, timeout=300)
    work = tmp_path / 'w'
    with OneNodeCluster() as cluster:
        env['SLURM_CONF'] = cluster.env['SLURM_CONF']
        proc = subprocess.run(['srun', '--ntasks', '2', '--time', '10', str(BIN / 'npe-train'),
                               'npe::smoke_unet.py', '--launcher', 'slurm', '--work-dir', str(work),
                               '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2'],
                              env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count('npe-train: 2 iterations') == 1
    run = json.loads((work / 'npe_train.json').read_text())
    assert run['npe']['distributed'] == dict(launcher='slurm', world_size=2, batch_per_process=8,
                                             total_batch=16)


def test_a_failed_torchrun_is_a_failed_run_not_a_usage_error(tmp_path):
    log = open(tmp_path / 'log.txt', 'w')
    with pytest.raises(launch.LaunchFailed, match=r'torchrun with 1 processes failed \(exit status 1\)'):
        launch.run_torchrun(1, 'npe.no_such_module', [], log=log)
    log.close()
    assert 'No module named npe.no_such_module' in (tmp_path / 'log.txt').read_text()


# --------------------------------------------------------------------------- GPU-only settings
# No GPU here: these check the config the kit writes with CUDA reported present; the GPU itself is
# exercised only on a GPU machine.
def test_amp_settings_on_a_cuda_machine(monkeypatch):
    import torch
    from mmengine.config import Config

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    for bf16, dtype, wanted, scaler in ((True, 'auto', 'bfloat16', False), (False, 'auto', 'float16', True),
                                        (True, 'float16', 'float16', True)):
        monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda bf16=bf16: bf16)
        cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01)),
                          npe=dict()))
        assert launch.apply_amp(cfg, dtype) == wanted
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == wanted
        assert (cfg.optim_wrapper.get('loss_scale') == 'dynamic') is scaler and cfg.npe.amp == wanted
    with pytest.raises(ConfigError, match='unknown amp_dtype'):
        launch.apply_amp(cfg, 'int8')


def test_loader_defaults_only_with_cuda(monkeypatch):
    from mmengine.config import Config

    def loaders():
        return Config(dict(train_dataloader=dict(num_workers=0, persistent_workers=False),
                           val_dataloader=dict(num_workers=0), test_dataloader=None))
    cfg = loaders()
    monkeypatch.setattr(launch, '_cuda', lambda: False)
    launch.loader_defaults(cfg, 2)
    assert cfg.train_dataloader.num_workers == 0 and 'pin_memory' not in cfg.train_dataloader
    monkeypatch.setattr(launch, '_cuda', lambda: True)
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(range(16)))
    launch.loader_defaults(cfg, 2)
    train = cfg.train_dataloader
    assert (train.num_workers, train.pin_memory, train.persistent_workers) == (8, True, True)
    assert cfg.val_dataloader.num_workers == 4 and cfg.test_dataloader is None
