"""A real one-node Slurm cluster on localhost for tests (Debian's slurm-wlm 22.05 + munge).

``munged`` runs as user munge with a key of its own, then ``slurmctld -D`` and ``slurmd -D``, all
with files in one temporary folder (config, state, spool, logs, munge socket): nothing of the
machine's own /etc/slurm or /run/munge is used. Every daemon is stopped by its own PID.

In CI (``CI=true``) missing packages are installed with apt and any failure to install or start is
a test failure; elsewhere the test is skipped with the reason.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

DAEMONS = ('munged', 'mungekey', 'slurmctld', 'slurmd')
CLIENTS = ('sbatch', 'squeue', 'scontrol', 'sinfo', 'scancel')
PACKAGES = ('slurm-wlm', 'munge')


def _which(name: str) -> str | None:
    return shutil.which(name) or next((str(p) for p in (Path('/usr/sbin') / name, Path('/sbin') / name)
                                       if p.is_file()), None)


def _in_ci() -> bool:
    return os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def _unavailable(reason: str):
    if _in_ci():
        pytest.fail(f'Slurm test cluster: {reason}', pytrace=False)
    pytest.skip(f'Slurm test cluster: {reason}')


def ensure_installed() -> None:
    """Slurm and munge present; in CI installed with apt when missing (as root)."""
    missing = [n for n in DAEMONS + CLIENTS if _which(n) is None]
    if not missing:
        return
    if not _in_ci():
        _unavailable(f'{", ".join(missing)} not installed (apt-get install {" ".join(PACKAGES)})')
    if os.geteuid() != 0:
        _unavailable(f'{", ".join(missing)} missing and not root to apt-get install them')
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    for cmd in (['apt-get', 'update', '-qq'], ['apt-get', 'install', '-y', '-qq', *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode:
            _unavailable(f'{" ".join(cmd)} failed: {proc.stderr.strip()[-500:]}')
    still = [n for n in DAEMONS + CLIENTS if _which(n) is None]
    if still:
        _unavailable(f'{", ".join(still)} still missing after apt-get install {" ".join(PACKAGES)}')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class OneNodeCluster:
    """``with OneNodeCluster() as c: subprocess.run(['sbatch', ...], env=c.env)``."""

    def __init__(self, cpus: int = 2):
        self.cpus = cpus
        self.procs: list[subprocess.Popen] = []
        self.root = Path(tempfile.mkdtemp(prefix='npe-slurm-', dir='/tmp'))
        self.root.chmod(0o755)  # munged runs as user munge and must reach its folder
        self.host = socket.gethostname().split('.')[0]  # `hostname -s`
        self.conf = self.root / 'slurm.conf'
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    # ------------------------------------------------------------------ start
    def _munge(self) -> None:
        folder = self.root / 'munge'
        folder.mkdir()
        folder.chmod(0o755)  # clients need to reach the socket; munged refuses a writable folder
        key = folder / 'munge.key'
        subprocess.run([_which('mungekey'), '-c', '-k', str(key)], check=True, capture_output=True)
        shutil.chown(folder, 'munge', 'munge')
        shutil.chown(key, 'munge', 'munge')
        key.chmod(0o400)
        self.socket = folder / 'munge.sock'
        cmd = [_which('munged'), '-F', f'--socket={self.socket}', f'--key-file={key}',
               f'--pid-file={folder / "munged.pid"}', f'--log-file={folder / "munged.log"}',
               f'--seed-file={folder / "munged.seed"}']
        self.procs.append(subprocess.Popen(cmd, user='munge', group='munge', stdout=subprocess.DEVNULL,
                                           stderr=open(self.root / 'munged.err', 'w')))
        self._wait(lambda: self.socket.exists(), 'munged', folder / 'munged.log', self.root / 'munged.err')

    def _write_conf(self) -> None:
        r = self.root
        for name in ('state', 'spool'):
            (r / name).mkdir()
        self.conf.write_text('\n'.join([
            'ClusterName=npetest', f'SlurmctldHost={self.host}', 'SlurmUser=root', 'SlurmdUser=root',
            f'SlurmctldPort={_free_port()}', f'SlurmdPort={_free_port()}',
            'AuthType=auth/munge', 'CredType=cred/munge', f'AuthInfo=socket={self.socket}',
            f'StateSaveLocation={r / "state"}', f'SlurmdSpoolDir={r / "spool"}',
            f'SlurmctldPidFile={r / "slurmctld.pid"}', f'SlurmdPidFile={r / "slurmd.pid"}',
            f'SlurmctldLogFile={r / "slurmctld.log"}', f'SlurmdLogFile={r / "slurmd.log"}',
            'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none',
            'SelectType=select/cons_tres', 'SelectTypeParameters=CR_Core',
            'SchedulerType=sched/backfill', 'MpiDefault=none', 'ReturnToService=2',
            'JobAcctGatherType=jobacct_gather/none', 'AccountingStorageType=accounting_storage/none',
            'SlurmdTimeout=60', 'MinJobAge=600',
            f'NodeName={self.host} CPUs={self.cpus} State=UNKNOWN',
            f'PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP',
        ]) + '\n')

    def _daemon(self, name: str, *args: str) -> None:
        err = self.root / f'{name}.err'
        self.procs.append(subprocess.Popen([_which(name), '-D', '-f', str(self.conf), *args],
                                           env=self.env, stdout=subprocess.DEVNULL,
                                           stderr=open(err, 'w')))

    def _wait(self, ready, what: str, *logs: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                break
            time.sleep(0.5)
        tails = ' | '.join(f'{p.name}: ' + ' '.join(p.read_text().split()[-40:]) for p in logs
                           if p.is_file())
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        _unavailable(f'{what} did not start: {tails}')

    def _node_idle(self) -> bool:
        proc = subprocess.run([_which('sinfo'), '-h', '-N', '-o', '%T'], env=self.env,
                              capture_output=True, text=True)
        return proc.returncode == 0 and proc.stdout.strip().startswith('idle')

    def start(self) -> 'OneNodeCluster':
        ensure_installed()
        self._munge()
        self._write_conf()
        self._daemon('slurmctld', '-i')
        self._daemon('slurmd', '-N', self.host)
        self._wait(self._node_idle, 'slurmctld/slurmd', self.root / 'slurmctld.log',
                   self.root / 'slurmd.log', self.root / 'slurmctld.err', self.root / 'slurmd.err')
        return self

    # ------------------------------------------------------------------ use
    def wait_for(self, job_ids: list[str], timeout: float = 900) -> None:
        """Until none of ``job_ids`` is pending or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run([_which('squeue'), '-h', '-j', ','.join(job_ids), '-o', '%i %T'],
                                 env=self.env, capture_output=True, text=True).stdout.strip()
            if not out:
                return
            time.sleep(2)
        raise TimeoutError(f'jobs {job_ids} still queued after {timeout} s')

    def job_states(self, job_id: str) -> dict[str, str]:
        """``{job id (array tasks as ID_i): state}`` from ``scontrol show job`` (kept MinJobAge s)."""
        out = subprocess.run([_which('scontrol'), 'show', 'job', '-o', job_id], env=self.env,
                             capture_output=True, text=True).stdout
        states = {}
        for line in out.splitlines():
            fields = dict(f.split('=', 1) for f in line.split() if '=' in f)
            task = fields.get('ArrayTaskId')
            key = f'{fields.get("ArrayJobId")}_{task}' if task else fields.get('JobId', '?')
            states[key] = fields.get('JobState', '?')
        return states

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Cancel what is left, then stop the daemons by PID (slurmd, slurmctld, munged)."""
        if any(p.poll() is None for p in self.procs[1:]):
            subprocess.run([_which('scancel'), '--user', 'root'], env=self.env, capture_output=True)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self.procs.clear()

    def __enter__(self) -> 'OneNodeCluster':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
