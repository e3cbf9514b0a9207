"""Launching: several processes through ``torchrun`` and MMEngine's launchers, a Slurm cluster.

The kit schedules nothing itself. One machine with several GPUs: ``torchrun`` starts the processes
and MMEngine's ``pytorch`` launcher joins them (DDP). A cluster: one ``sbatch`` job array with a task
per training and a dependent job for the tables; inside an allocation MMEngine's ``slurm`` launcher
(``srun``) works too. The scripts handed to ``sbatch`` are generated plain bash (kept next to their
logs), so what runs on the cluster can be read, rerun by hand, and needs no Python client on top
of Slurm's own commands.

Batch semantics: the paper's total batch (the config's ``train_dataloader.batch_size`` after every
option, 16 for NPE configs) is split over the processes, so N processes see the same images per
iteration as one; ``batch_per_process`` keeps a per-process batch instead (total = that x N). The
split and the world size are recorded in ``cfg.npe['distributed']`` and in every result file.

Nothing here imports the training code: :mod:`npe.training` and :mod:`npe.run` call in.
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from npe.errors import ConfigError, RunError, arg

__all__ = ['check_launcher_environment', 'world_size', 'rank', 'ddp_settings', 'distribute', 'init_distributed',
           'finish_distributed', 'loader_defaults', 'check_visible_gpus', 'apply_amp', 'torchrun_command',
           'array_spec', 'write_sbatch_scripts', 'submit_slurm']

#: What each launcher reads from the environment its starter sets.
LAUNCHER_ENV = {'pytorch': ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')}
#: How to start a command under each launcher (one line each).
HOW_TO_START = {
    'pytorch': 'start it with torchrun, e.g. torchrun --nproc-per-node 2 $(command -v {cmd}) ... '
               '--launcher pytorch (or npe-repro RECIPE --gpus 2)',
    'slurm': 'start it with srun inside a Slurm allocation, e.g. srun --ntasks 2 {cmd} ... '
             '--launcher slurm (or npe-repro RECIPE --slurm)',
}
AMP_DTYPES = ('auto', 'float16', 'bfloat16')
#: MMEngine's AmpOptimWrapper refuses to run without CUDA/NPU/MLU (no CPU autocast path).
AMP_NEEDS_A_GPU = (f'{arg("amp")} needs a GPU (CUDA; MMEngine mixed precision does not run on CPU); '
                   f'leave {arg("amp")} off')
log = logging.getLogger(__name__)


def check_launcher_environment(launcher: str, command: str = 'npe-train') -> None:
    """Raise a one-line :class:`ConfigError` when ``launcher``'s starter did not set its variables
    (MMEngine would die on ``KeyError: 'RANK'`` / ``'SLURM_PROCID'``)."""
    missing = [k for k in LAUNCHER_ENV.get(launcher, ()) if k not in os.environ]
    if missing:
        raise ConfigError(f'{arg("launcher")} {launcher} was started outside its launcher (no '
                          f'{", ".join(missing)} in the environment); '
                          + HOW_TO_START[launcher].format(cmd=command))


def world_size(launcher: str) -> int:
    """Processes of this run according to the launcher's environment (1 for ``none``)."""
    key = {'pytorch': 'WORLD_SIZE', 'slurm': 'SLURM_NTASKS'}.get(launcher)
    return int(os.environ.get(key, 1)) if key else 1


def rank() -> int:
    """This process's global rank from the launcher's environment (0 when not launched)."""
    return int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', 0)))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def check_visible_gpus(processes: int, what: str, fix: str) -> None:
    """On a CUDA machine, refuse more processes on this node than it has GPUs, in one line.

    Without the check, two ranks share GPU 0 and NCCL stops deep inside the first collective. On a
    machine without CUDA, N processes are N CPU (gloo) processes and any N is fine.
    """
    if processes < 1 or not _cuda():
        return
    import torch

    visible = torch.cuda.device_count()
    if processes > visible:
        shown = os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')
        raise ConfigError(f'{what} needs {processes} GPUs, one per process, but this machine has '
                          f'{visible} visible (CUDA_VISIBLE_DEVICES={shown}); {fix}')


def _replace_syncbn(node) -> None:
    """SyncBN -> BN in every ``norm_cfg`` of a model config (gloo cannot run SyncBN on CPU)."""
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
        for value in node.values():
            _replace_syncbn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _replace_syncbn(value)


def ddp_settings(cfg) -> None:
    """DDP settings of a config run under a launcher (training or testing): unused parameters looked
    for; without CUDA, gloo, BN instead of SyncBN and no device list."""
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['find_unused_parameters'] = True
    if not _cuda():
        wrapper['device_ids'] = None  # CPU modules: DDP refuses a device list
        _replace_syncbn(cfg.model)
        env = dict(cfg.get('env_cfg') or {})
        env['dist_cfg'] = dict(env.get('dist_cfg') or {}, backend='gloo')
        cfg.env_cfg = env
    cfg.model_wrapper_cfg = wrapper


def distribute(cfg, launcher: str, world: int, batch_per_process: int | None = None) -> None:
    """Split ``cfg``'s (an NPE training config's) batch over ``world`` processes under ``launcher``.

    Splits the total batch (or keeps ``batch_per_process``) and records the split in
    ``cfg.npe['distributed']``. The DDP settings themselves (:func:`ddp_settings`: unused parameters
    looked for, since the wrapper's unused classifier and frozen parts get no gradient, docs/method.md
    section 5 row 4; gloo, BN and CPU DDP without CUDA) are applied by
    :func:`npe.runtime.apply_runtime`, which calls this as its ``after_options``.
    """
    if world < 1:
        raise ConfigError(f'world size must be >= 1, got {world}')
    loader = cfg.train_dataloader
    if batch_per_process is not None:
        if batch_per_process < 1:
            raise ConfigError(f'{arg("batch_per_process")} must be >= 1, got {batch_per_process}')
        per, total = int(batch_per_process), int(batch_per_process) * world
    else:
        total = int(loader.batch_size)
        if total % world:
            raise ConfigError(f'the total batch {total} does not split evenly over {world} processes; '
                              f'use a process count that divides it, or give {arg("batch_per_process")}')
        per = total // world
    loader.batch_size = per
    cfg.npe['distributed'] = dict(launcher=launcher, world_size=int(world), batch_per_process=per,
                                  total_batch=total)


def _slurm_port() -> str:
    """A master port of the job's own (array tasks sharing a node must not collide on 29500)."""
    job = int(os.environ.get('SLURM_JOB_ID', '0') or 0)
    return str(20000 + job % 20000)


def init_distributed(launcher: str, expected_world: int | None = None, command: str = 'npe-train',
                     dist_cfg: dict | None = None) -> None:
    """Join the process group of ``launcher`` before MMEngine's Runner would (one-line error when
    started outside it).

    With CUDA this is MMEngine's ``init_dist`` (nccl, or ``dist_cfg``). Without CUDA MMEngine's
    launchers cannot start (they call ``torch.cuda.set_device``), so a gloo group is started from the
    same variables. A Slurm job gets a master port of its own (array tasks may share a node).
    """
    import torch.distributed as dist

    check_launcher_environment(launcher, command)
    if launcher == 'slurm':
        os.environ.setdefault('MASTER_PORT', _slurm_port())
    world = world_size(launcher)
    if expected_world is not None and expected_world != world:
        raise ConfigError(f'the config was built for {expected_world} processes but {world} were '
                          'started; build and launch it with the same process count')
    if dist.is_available() and dist.is_initialized():
        return
    if _cuda():
        from mmengine.dist import init_dist

        # the processes this node runs, each on a GPU of its own (torchrun / srun say how many)
        local = int(os.environ.get('LOCAL_WORLD_SIZE') or os.environ.get('SLURM_NTASKS_PER_NODE') or 1)
        check_visible_gpus(local, f'{command} under {launcher}',
                           'start at most that many processes per node')

        init_dist(launcher, **dict(dist_cfg or {}))
        return
    if launcher == 'slurm':
        nodes = subprocess.run(['scontrol', 'show', 'hostnames', os.environ['SLURM_NODELIST']],
                               capture_output=True, text=True).stdout.split()
        os.environ.setdefault('MASTER_ADDR', nodes[0] if nodes else '127.0.0.1')
        os.environ.update(RANK=os.environ['SLURM_PROCID'], WORLD_SIZE=os.environ['SLURM_NTASKS'],
                          LOCAL_RANK=os.environ.get('SLURM_LOCALID', '0'))
    dist.init_process_group('gloo', rank=int(os.environ['RANK']), world_size=world)


def finish_distributed() -> None:
    """Leave the process group after a run that ended well: a barrier, then its destruction.

    A process that exits with its group alive can die at interpreter shutdown (gloo's worker threads
    still hold work: ``terminate called without an active exception``, SIGABRT, a non-zero exit
    after a good run). Not called on errors: destroying a group while another rank is inside a
    collective can hang.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def loader_defaults(cfg, processes: int = 1) -> None:
    """DataLoader settings for a GPU box, applied before ``--cfg-options`` (which override them).

    On a CUDA machine: worker processes (the machine's cores shared among the training processes,
    at most 8 each), pinned memory and persistent workers for the training loader; validation and
    test loaders get workers too. Without CUDA the config's own settings stay (the kit's CPU
    configs load in the main process on purpose).
    """
    if not _cuda():
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    workers = max(1, min(8, cores // max(1, processes)))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not loader:
            continue
        loader.num_workers = workers if key == 'train_dataloader' else max(1, workers // 2)
        loader.persistent_workers = True
        loader.pin_memory = True


def apply_amp(cfg, dtype: str = 'auto') -> str:
    """Mixed precision through MMEngine's ``AmpOptimWrapper``; returns the dtype used.

    ``auto``: bfloat16 where the GPU supports it, else float16 with dynamic loss scaling (float16
    always gets the loss scaler). Raises :class:`ConfigError` on a machine without CUDA.
    """
    import torch

    if dtype not in AMP_DTYPES:
        raise ConfigError(f'unknown {arg("amp_dtype")} {dtype!r}; choose one of {", ".join(AMP_DTYPES)}')
    if not torch.cuda.is_available():
        raise ConfigError(AMP_NEEDS_A_GPU)
    if dtype == 'auto':
        dtype = 'bfloat16' if torch.cuda.is_bf16_supported() else 'float16'
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
        wrapper.type = 'AmpOptimWrapper'
    wrapper.dtype = dtype
    if dtype == 'float16':
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        wrapper.pop('loss_scale', None)  # bf16 has float32's range: no scaler
    cfg.npe['amp'] = dtype
    return dtype


# ----------------------------------------------------------------------------- torchrun
def torchrun_command(nproc: int, module: str, args: Sequence[str]) -> list[str]:
    """``torchrun --standalone --nproc-per-node N -m MODULE ARGS`` with this interpreter (same venv);
    ``--standalone`` picks a free local port, so several runs on one machine do not collide."""
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc-per-node={nproc}',
            '-m', module, *map(str, args)]


class LaunchFailed(RuntimeError):
    """A launched training failed (not a usage error: the driver records it as a failed run and goes
    on with the others, as it does for a training that fails in its own process)."""


def run_torchrun(nproc: int, module: str, args: Sequence[str], log=None) -> None:
    """Run :func:`torchrun_command`; :class:`LaunchFailed` naming the log when a process fails."""
    cmd = torchrun_command(nproc, module, args)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT if log else None, env=env)
    if proc.returncode:
        where = f'; see {log.name}' if log is not None and hasattr(log, 'name') else ''
        raise LaunchFailed(f'torchrun with {nproc} processes failed (exit status {proc.returncode}){where}')


# ----------------------------------------------------------------------------- Slurm
def _script(lines: Sequence[str], directives: Sequence[str]) -> str:
    head = ['#!/bin/bash'] + [f'#SBATCH {d}' for d in directives]
    return '\n'.join(head + ['set -euo pipefail', *lines]) + '\n'


def array_spec(tasks: int | Sequence[int]) -> str:
    """Slurm's ``--array`` value: ``0-(N-1)`` for N tasks, else the plan indices given (``3`` or
    ``1,4``): an array task's id is the index of the training it runs in the whole plan."""
    indices = list(range(tasks)) if isinstance(tasks, int) else sorted({int(i) for i in tasks})
    runs: list[list[int]] = []
    for i in indices:  # consecutive indices as one range: 0,1,2,5 -> 0-2,5
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ','.join(f'{a}-{b}' if b > a else str(a) for a, b in runs)


def write_sbatch_scripts(folder: Path, *, recipe_name: str, tasks: int | Sequence[int],
                         task_command: Sequence[str], tables_command: Sequence[str],
                         gpus: int = 0) -> tuple[Path, Path]:
    """Write ``train.sbatch`` (a job array, one task per training: ``tasks`` trainings, or those plan
    indices; each task runs ``task_command`` with ``--task $SLURM_ARRAY_TASK_ID`` appended) and
    ``tables.sbatch`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cwd = shlex.quote(os.getcwd())
    train_directives = [f'--job-name=npe-{recipe_name}', f'--array={array_spec(tasks)}',
                        f'--output={folder}/train-%A_%a.out', '--ntasks=1']
    if gpus:
        train_directives.append(f'--gres=gpu:{gpus}')
    task = ' '.join(shlex.quote(str(a)) for a in task_command) + ' --task "$SLURM_ARRAY_TASK_ID"'
    train = folder / 'train.sbatch'
    train.write_text(_script([f'cd {cwd}', f'exec {task}'], train_directives))
    tables = folder / 'tables.sbatch'
    tables.write_text(_script([f'cd {cwd}', 'exec ' + ' '.join(shlex.quote(str(a)) for a in tables_command)],
                              [f'--job-name=npe-{recipe_name}-tables', f'--output={folder}/tables-%j.out',
                               '--ntasks=1']))
    for path in (train, tables):
        path.chmod(0o755)
    return train, tables


def _sbatch(args: Sequence[str]) -> str:
    sbatch = shutil.which('sbatch')
    if sbatch is None:
        raise RunError(f'{arg("slurm")}: no sbatch on PATH; submit from a Slurm login node '
                       '(Debian/Ubuntu: apt install slurm-client)')
    proc = subprocess.run([sbatch, '--parsable', *args], capture_output=True, text=True)
    if proc.returncode:
        message = ' '.join((proc.stderr or proc.stdout).split()) or f'exit status {proc.returncode}'
        raise RunError(f'sbatch failed: {message}')
    return proc.stdout.strip().split(';')[0]


def submit_slurm(train_script: Path, tables_script: Path | None, sbatch_options: Sequence[str]) -> tuple[str, str | None]:
    """Submit the array, then the tables job ``afterany`` it; returns both job ids.

    ``sbatch_options`` (e.g. ``--partition gpu --time 8:00:00``) go to both submissions and override
    the scripts' ``#SBATCH`` lines.
    """
    array_id = _sbatch([*sbatch_options, str(train_script)])
    tables_id = None
    if tables_script is not None:
        tables_id = _sbatch([*sbatch_options, f'--dependency=afterany:{array_id}', str(tables_script)])
    return array_id, tables_id


def submit_recipe(recipe_path: Path, recipe_name: str, tasks: int | Sequence[int], task_flags: Sequence[str],
                  results: Path,
                  work_root: Path, sbatch_options: Sequence[str], *, gpus: int = 0, tables: bool = True) -> int:
    """Submit the recipe's trainings as one Slurm job array (task i = ``npe-repro RECIPE TASK_FLAGS
    --task i``, each writing its own result files) and, with ``tables``, the tables as a job
    ``afterany`` the array.

    ``task_flags`` are the driver's options as ``npe-repro`` flags
    (:meth:`npe.driver_options.DriverOptions.to_argv`). The scripts and the jobs' output go to
    ``<work_root>/<recipe>/slurm/<time>/``. Returns 0.
    """
    import time

    folder = work_root / recipe_name / 'slurm' / time.strftime('%Y%m%d_%H%M%S')
    command = [sys.executable, '-m', 'npe', str(recipe_path), *task_flags]
    table_command = [sys.executable, '-m', 'npe.cli.tables', '--results-dir', str(results),
                     '--recipe', str(recipe_path)]
    train_script, tables_script = write_sbatch_scripts(
        folder, recipe_name=recipe_name, tasks=tasks, task_command=command,
        tables_command=table_command, gpus=gpus)
    array_id, tables_id = submit_slurm(train_script, tables_script if tables else None, sbatch_options)
    count = tasks if isinstance(tasks, int) else len(set(tasks))
    log.info('submitted %s: job array %s (%d training(s): plan index %s; %s), tables job %s after it; '
             'output in %s', recipe_name, array_id, count, array_spec(tasks), train_script, tables_id or '-',
             folder)
    log.info('follow with: squeue -j %s%s', array_id, ',' + tables_id if tables_id else '')
    return 0
