"""The Docker image and `docker compose run repro <recipe>`, for real: a Docker engine started by the
tests, the Debian base made by debootstrap, the CPU image built through docker/Dockerfile by Compose,
the smoke recipe run with no user variable, its files landing on the host owned by the owner of the
host folders (root, 1000 or another uid); one error line for unwritable folders and for the GPU service
without a GPU; the image saved, loaded into a second fresh engine and run there without network.

Static checks (hadolint, `docker compose config -q`, actionlint) need no engine and always run.
In CI (CI=true) a missing or unstartable engine fails these tests; elsewhere they skip, saying why.
Build and run times are written to .cache/docker/timings.json (and shown with -rA as properties).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docker_engine import ROOT, EngineUnavailable, compose_binary, start_engine
from npe.provenance import parse_result_lines

IN_CI = os.environ.get('CI', '').strip().lower() in ('1', 'true', 'yes')
VENV_BIN = Path(sys.executable).parent
COMPOSE_FILES = ('-f', 'docker-compose.yml', '-f', 'docker/compose.cpu.yml')
OFFLINE_FILES = (*COMPOSE_FILES, '-f', 'docker/compose.offline.yml')
IMAGE = 'npe-kit:test-cpu'
BASE_IMAGE = 'npe-base:bookworm'
PROJECT = 'npe-kit-test'
TIMINGS = ROOT / '.cache' / 'docker' / 'timings.json'


def _tool(name: str) -> str:
    path = VENV_BIN / name
    if path.is_file():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f'{name} not found (docker/requirements-tools.lock installs it into .venv)', pytrace=False)
    return found


def _record(key: str, value) -> None:
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(TIMINGS.read_text()) if TIMINGS.is_file() else {}
    data[key] = value
    data['updated'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    TIMINGS.write_text(json.dumps(data, indent=1) + '\n')


# ----------------------------------------------------------------------------- static checks
def test_hadolint_passes_on_the_dockerfile():
    # stricter than asked (errors): warnings and infos fail too; justified exceptions are inline
    proc = subprocess.run([_tool('hadolint'), '--no-color', 'docker/Dockerfile'],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_is_a_real_check(tmp_path):
    bad = tmp_path / 'Dockerfile'
    bad.write_text('FROM debian:bookworm\nRUN sudo apt-get install -y curl\n')
    proc = subprocess.run([_tool('hadolint'), '--no-color', '--failure-threshold', 'error', str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and 'DL3004 error' in proc.stdout


def _compose_config(*files: str) -> subprocess.CompletedProcess:
    # no engine needed; a private DOCKER_CONFIG keeps the user's settings out
    env = dict(os.environ, DOCKER_HOST='unix:///nonexistent.sock')
    env.pop('NPE_IMAGE', None)
    return subprocess.run([str(compose_binary()), *files, 'config', '--format', 'json'], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def test_compose_files_are_valid():
    for files in (('-f', 'docker-compose.yml'), COMPOSE_FILES):
        quiet = subprocess.run([str(compose_binary()), *files, 'config', '-q'], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
        assert quiet.returncode == 0, quiet.stderr
    gpu = json.loads(_compose_config('-f', 'docker-compose.yml').stdout)['services']['repro']
    devices = gpu['deploy']['resources']['reservations']['devices']
    assert devices[0]['driver'] == 'nvidia' and devices[0]['capabilities'] == ['gpu']
    assert gpu['shm_size'] and gpu['image'] == 'npe-kit:cuda'
    assert 'user' not in gpu, 'the entry point picks the user (the owner of the results folder)'
    assert gpu['environment']['NPE_REQUIRE_GPU'] == '1' and gpu['pull_policy'] == 'build'
    assert {v['target'] for v in gpu['volumes']} == {'/workspace/segmentation/data', '/workspace/results',
                                                      '/workspace/work_dirs'}
    cpu = json.loads(_compose_config(*COMPOSE_FILES).stdout)['services']['repro']
    assert 'deploy' not in cpu, 'the CPU override must drop the GPU reservation'
    assert cpu['build']['args']['LOCK'] == 'docker/requirements-cpu.lock'
    assert cpu['image'] == cpu['build']['args']['NPE_IMAGE'] == 'npe-kit:cpu'
    assert cpu['environment']['NPE_REQUIRE_GPU'] == '0'
    offline = json.loads(_compose_config(*OFFLINE_FILES).stdout)['services']['repro']
    assert offline['pull_policy'] == 'never' and 'build' not in offline and offline['network_mode'] == 'none'
    assert offline['environment']['NPE_OFFLINE'] == '1' and offline['image'] == 'npe-kit:cpu'


def test_actionlint_passes_on_the_workflows():
    workflows = sorted((ROOT / '.github' / 'workflows').glob('*.yml'))
    assert len(workflows) >= 2
    proc = subprocess.run([_tool('actionlint'), '-no-color', *map(str, workflows)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_is_a_real_check(tmp_path):
    (tmp_path / '.github' / 'workflows').mkdir(parents=True)
    bad = tmp_path / '.github' / 'workflows' / 'bad.yml'
    bad.write_text('on: push\njobs:\n  a:\n    runs-on: [self-hosted, gpu-typo]\n'
                   '    steps:\n      - run: echo ${{ github.nope }}\n')
    proc = subprocess.run([_tool('actionlint'), '-no-color', str(bad)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0


def test_no_engine_fails_in_ci_and_skips_elsewhere(tmp_path):
    """The engine fixture's contract, run in a child pytest against an engine that does not exist."""
    base = {k: v for k, v in os.environ.items() if k not in ('CI', 'PYTEST_ADDOPTS')}
    base['NPE_DOCKER_HOST'] = f'unix://{tmp_path}/no-engine.sock'
    cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-rs', '--rootdir', str(ROOT),
           str(ROOT / 'tests' / 'test_docker.py'), '-k', 'dry_run_prints']
    outside = subprocess.run(cmd, env=base, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert outside.returncode == 0 and '1 skipped' in outside.stdout, outside.stdout[-2000:]
    assert 'no Docker engine' in outside.stdout
    in_ci = subprocess.run(cmd, env=dict(base, CI='true'), cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert in_ci.returncode != 0 and 'Docker engine unavailable in CI' in in_ci.stdout, in_ci.stdout[-2000:]


# ----------------------------------------------------------------------------- the engine
@pytest.fixture(scope='module')
def engine():
    try:
        eng = start_engine()
    except EngineUnavailable as exc:
        if IN_CI:
            pytest.fail(f'Docker engine unavailable in CI: {exc}', pytrace=False)
        pytest.skip(f'no Docker engine: {exc}')
    if eng.process is not None:
        _record('engine_start_s', round(eng.started_s, 1))
    yield eng
    eng.stop()


def _host_uid() -> int:
    """The owner of the host folders of the main runs: this user, or a fresh non-root UID when we are
    root (the container has to find it out: no user variable is set)."""
    return os.getuid() if os.getuid() != 0 else 4242


def _host_folders(parent: Path, owner: int, modes: dict | None = None, owners: dict | None = None) -> dict:
    """data, results and work_dirs under ``parent``, owned by ``owner`` (``owners``/``modes`` per name
    override it), and the NPE_HOST_* variables that mount them."""
    if os.getuid() != 0 and {owner, *(owners or {}).values()} != {os.getuid()}:
        pytest.skip('giving the host folders to another user needs root')
    folders = {}
    for name in ('data', 'results', 'work_dirs'):
        folder = parent / name
        folder.mkdir(parents=True)
        uid = (owners or {}).get(name, owner)
        os.chown(folder, uid, uid)
        os.chmod(folder, (modes or {}).get(name, 0o755))
        folders[name] = folder
    os.chmod(parent, 0o755)
    env = {'NPE_HOST_DATA': str(folders['data']), 'NPE_HOST_RESULTS': str(folders['results']),
           'NPE_HOST_WORK_DIRS': str(folders['work_dirs'])}
    return {**folders, 'env': env}


def _copy_checkout(dest: Path) -> None:
    """The tracked (and untracked, not ignored) files of the checkout: what a fresh clone holds."""
    try:
        files = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                               cwd=ROOT, capture_output=True, check=True).stdout.decode().split('\0')
    except (OSError, subprocess.CalledProcessError):
        files = None
    if files is None:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns('.git', '.venv', '.cache', 'work_dirs',
                                                                    '__pycache__', '*.whl'))
        return
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.fixture(scope='module')
def project(engine, tmp_path_factory):
    """A copy of the checkout with the wheelhouse filled, the base image in the engine, host folders
    owned by a non-root UID, and the environment `docker compose` runs with there."""
    uid = _host_uid()
    ctx = tmp_path_factory.mktemp('ctx') / 'kit'
    ctx.mkdir()
    _copy_checkout(ctx)
    house = subprocess.run(['bash', 'scripts/docker_wheelhouse.sh'], cwd=ROOT, capture_output=True,
                           text=True, timeout=1800)
    assert house.returncode == 0, house.stdout + house.stderr
    for wheel in (ROOT / 'docker' / 'wheelhouse').glob('*.whl'):
        try:
            os.link(wheel, ctx / 'docker' / 'wheelhouse' / wheel.name)
        except OSError:
            shutil.copy2(wheel, ctx / 'docker' / 'wheelhouse' / wheel.name)
    host = tmp_path_factory.mktemp('host')
    folders = {name: host / name for name in ('data', 'results', 'work_dirs')}
    for folder in folders.values():
        folder.mkdir()
        os.chown(folder, uid, uid)
    os.chmod(host, 0o755)
    commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    # no NPE_UID / NPE_GID (None: unset even when the caller's shell has them)
    env = {'COMPOSE_PROJECT_NAME': PROJECT, 'NPE_IMAGE': IMAGE, 'NPE_CPU_BASE_IMAGE': BASE_IMAGE,
           'NPE_UID': None, 'NPE_GID': None, 'NPE_GIT_COMMIT': commit or 'unknown',
           'NPE_HOST_DATA': str(folders['data']), 'NPE_HOST_RESULTS': str(folders['results']),
           'NPE_HOST_WORK_DIRS': str(folders['work_dirs'])}
    if not os.environ.get('NPE_DOCKER_HOST'):
        t0 = time.monotonic()
        base = engine.run('bash', 'scripts/docker_base.sh', cwd=ctx, env=env, timeout=1800)
        assert base.returncode == 0, base.stdout + base.stderr
        _record('base_image_s', round(time.monotonic() - t0, 1))
        _record('base_image_note', base.stdout.strip().splitlines()[-1])
    t0 = time.monotonic()
    build = engine.run('docker', 'compose', *COMPOSE_FILES, 'build', cwd=ctx, env=env, timeout=2400)
    assert build.returncode == 0, build.stdout[-6000:] + build.stderr[-6000:]
    _record('image_build_s', round(time.monotonic() - t0, 1))
    _record('image_build_cached_steps', (build.stdout + build.stderr).count('Using cache'))
    size = engine.run('docker', 'image', 'inspect', '-f', '{{.Size}}', IMAGE, check=True).stdout.strip()
    _record('image_size_bytes', int(size))
    return {'ctx': ctx, 'env': env, 'uid': uid, 'commit': commit, **folders}


def compose_run(engine, project, *args: str, build: bool = True, timeout: float = 1800,
                env: dict | None = None, flags: tuple = ()) -> subprocess.CompletedProcess:
    """`docker compose run [--build] --rm [FLAGS] repro ARGS` (the compose file's pull_policy builds
    anyway); ``env`` adds to the project's variables."""
    flags = (*(('--build', '--rm') if build else ('--rm',)), *flags)
    return engine.run('docker', 'compose', *COMPOSE_FILES, 'run', *flags, 'repro', *args,
                      cwd=project['ctx'], env={**project['env'], **(env or {})}, timeout=timeout)


def _owners(folder: Path) -> set[int]:
    return {p.stat().st_uid for p in folder.rglob('*')}


def _assert_owned_and_readable(folder: Path, owner: int) -> None:
    """Something was written into ``folder``; all of it belongs to ``owner``, who can read it."""
    paths = list(folder.rglob('*'))
    assert paths, f'nothing written into {folder}'
    assert {p.stat().st_uid for p in paths} == {owner}, {str(p): p.stat().st_uid for p in paths
                                                         if p.stat().st_uid != owner}
    for path in paths:
        mode = path.stat().st_mode
        assert mode & 0o400 and (not path.is_dir() or mode & 0o700 == 0o700), f'{path}: {oct(mode)}'


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The non-empty stderr lines of a run, less Compose's own log lines (`time="..." level=...`)."""
    return [line for line in proc.stderr.splitlines()
            if line.strip() and not re.match(r'time="[^"]*" level=', line)]


@pytest.mark.integration
@pytest.mark.timeout(3600)
def test_smoke_recipe_runs_in_the_cpu_image(engine, project):
    t0 = time.monotonic()
    proc = compose_run(engine, project, 'smoke')
    _record('smoke_run_with_build_check_s', round(time.monotonic() - t0, 1))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    results = project['results']
    files = sorted((results / 'smoke').glob('*.json'))
    assert {f.name for f in files} == {'baseline__seed0__s1.json', 'counted_la__seed0__s1.json',
                                       'counted_la__seed0__s2.json', 'npe1__seed0__s1.json',
                                       'npe1__seed0__s2.json', 'npe_main_only__seed0__sinf.json',
                                       'npe_counted_la__seed0__s1.json', 'npe_counted_la__seed0__s2.json'}
    assert (results / 'tables' / 'smoke.md').is_file()
    # no user variable was set: the entry point ran the work as the owner of the host folders
    _assert_owned_and_readable(results, project['uid'])
    _assert_owned_and_readable(project['data'], project['uid'])
    _assert_owned_and_readable(project['work_dirs'], project['uid'])
    # one grep-able line per finished run, the same numbers as the files
    lines = parse_result_lines(proc.stdout)
    assert len(lines) == len(files) and all(r['status'] == 'ok' and r['recipe'] == 'smoke' for r in lines)
    npe1 = json.loads((results / 'smoke' / 'npe1__seed0__s2.json').read_text())
    assert {'variant': 'npe1', 'seed': 0, 's': 2.0, 'mIoU': npe1['metrics']['mIoU']}.items() <= \
        next(r for r in lines if r['variant'] == 'npe1' and r['s'] == 2.0).items()
    env = npe1['environment']
    assert env['image'] == {'tag': IMAGE, 'commit': project['env']['NPE_GIT_COMMIT']}
    assert env['git_commit'] == project['env']['NPE_GIT_COMMIT']
    assert env['gpu_count'] == 0 and env['gpus'] == [] and env['cpu_model'] and env['cpu_isa']
    assert env['torch'].startswith('2.13.0') and env['mmcv'] == '2.1.0'


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_unknown_recipe_lists_the_recipes_and_fails(engine, project):
    proc = compose_run(engine, project, 'no_such_recipe', build=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert "error: unknown recipe 'no_such_recipe'" in err
    assert 'smoke' in err and 'longtail_synth' in err and 'stare_unet' in err
    assert 'Traceback' not in proc.stdout + proc.stderr


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_dry_run_prints_the_plan(engine, project):
    proc = compose_run(engine, project, 'smoke', '--dry-run', build=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'recipe smoke:' in proc.stdout and 'training runs (2)' in proc.stdout
    assert '/npe/recipes_builtin/smoke.yaml' in proc.stdout  # the non-editable install's recipes


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_tables_are_made_through_the_same_service(engine, project):
    tables = project['results'] / 'tables'
    if not (project['results'] / 'smoke').is_dir():
        pytest.skip('needs the smoke run of test_smoke_recipe_runs_in_the_cpu_image')
    shutil.rmtree(tables, ignore_errors=True)
    proc = compose_run(engine, project, 'tables', '--recipe', 'smoke', '--no-figures')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name for p in tables.iterdir()} >= {'smoke.md', 'smoke.tex', 'smoke.csv'}
    assert _owners(tables) == {project['uid']}


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_no_argument_runs_the_default_recipe(engine, project, tmp_path):
    """`docker compose run --rm repro` = longtail_synth; over the committed results it only
    re-checks them and prints the table, as scripts/repro.sh does in a clone."""
    results = tmp_path / 'results'
    shutil.copytree(ROOT / 'results' / 'longtail_synth', results / 'longtail_synth')
    for path in [results, *results.rglob('*')]:
        os.chown(path, project['uid'], project['uid'])
    proc = engine.run('docker', 'compose', *COMPOSE_FILES, 'run', '--rm', 'repro', cwd=project['ctx'],
                      env=dict(project['env'], NPE_HOST_RESULTS=str(results)), timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count('done, skipped') == 6
    assert 'longtail_synth: mIoU' in proc.stdout and (results / 'tables' / 'longtail_synth.md').is_file()


@pytest.mark.integration
@pytest.mark.timeout(1800)
@pytest.mark.parametrize('owner', [0, 1000])
def test_files_land_owned_by_the_owner_of_the_host_folders(engine, project, tmp_path, owner):
    """No NPE_UID: host folders owned by root give root's files, by 1000 give 1000's (4242: the smoke
    test above). One training (the baseline of smoke) writes into all three mounts."""
    host = _host_folders(tmp_path, owner)
    proc = compose_run(engine, project, 'smoke', '--variants', 'baseline', build=False, env=host['env'])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = host['results'] / 'smoke' / 'baseline__seed0__s1.json'
    assert json.loads(result.read_text())['metrics']['mIoU'] >= 0
    for name in ('data', 'results', 'work_dirs'):
        _assert_owned_and_readable(host[name], owner)


@pytest.mark.integration
@pytest.mark.timeout(1800)
@pytest.mark.parametrize('case', ['results_not_writable', 'data_of_another_user'])
def test_unwritable_mount_gives_one_error_line_before_any_work(engine, project, tmp_path, case):
    uid = _host_uid()
    if case == 'results_not_writable':
        host = _host_folders(tmp_path, uid, modes={'results': 0o555})
        bad, owner, fix = '/workspace/results', f'{uid}:{uid}', f'chmod u+rwx {host["results"]}'
    else:
        other = 1000 if uid != 1000 else 4343
        host = _host_folders(tmp_path, uid, owners={'data': other})
        bad, owner, fix = '/workspace/segmentation/data', f'{other}:{other}', \
            f'sudo chown -R {uid}:{uid} {host["data"]}'
    proc = compose_run(engine, project, 'smoke', build=False, env=host['env'])
    lines = _error_lines(proc)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f'error: {bad} is not writable by uid {uid} (owner {owner}, mode '), lines[0]
    assert f'fix with {fix}' in lines[0]
    assert parse_result_lines(proc.stdout) == [] and 'recipe smoke' not in proc.stdout, 'no work began'
    for name in ('data', 'results', 'work_dirs'):
        assert not any(host[name].iterdir()), f'{name} was written into'


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_gpu_service_without_a_gpu_fails_with_one_line_before_any_work(engine, project, tmp_path):
    """NPE_REQUIRE_GPU=1 (docker-compose.yml's value) on the CPU image: torch sees no CUDA."""
    host = _host_folders(tmp_path, _host_uid())
    proc = compose_run(engine, project, 'smoke', build=False, env=host['env'],
                       flags=('-e', 'NPE_REQUIRE_GPU=1'))
    lines = _error_lines(proc)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith('error: no usable GPU: ') and 'built without CUDA' in lines[0], lines[0]
    for fix in ('NVIDIA driver', 'NVIDIA Container Toolkit', 'docker run --rm --gpus all ubuntu nvidia-smi'):
        assert fix in lines[0]
    assert parse_result_lines(proc.stdout) == [] and 'recipe smoke' not in proc.stdout, 'no work began'
    for name in ('data', 'results', 'work_dirs'):
        assert not any(host[name].iterdir()), f'{name} was written into'
    # the plan needs no GPU
    plan = compose_run(engine, project, 'smoke', '--dry-run', build=False, env=host['env'],
                       flags=('-e', 'NPE_REQUIRE_GPU=1'))
    assert plan.returncode == 0 and 'recipe smoke:' in plan.stdout, plan.stderr[-2000:]


@pytest.mark.integration
@pytest.mark.timeout(2400)
def test_a_loaded_image_runs_offline_in_a_fresh_engine(engine, project, tmp_path):
    """docker save here, docker load into a second engine with nothing else (no base image, no build
    cache: a build would fail), then compose with docker/compose.offline.yml: no build, no network."""
    if os.geteuid() != 0:
        pytest.skip('a second private dockerd needs root')
    tar = tmp_path / 'image.tar'
    t0 = time.monotonic()
    engine.run('docker', 'save', '-o', str(tar), IMAGE, check=True, timeout=1200)
    _record('image_save_s', round(time.monotonic() - t0, 1))
    try:
        second = start_engine(fresh=True)
    except EngineUnavailable as exc:
        pytest.fail(f'a second engine did not start: {exc}', pytrace=False)
    try:
        t0 = time.monotonic()
        second.run('docker', 'load', '-i', str(tar), check=True, timeout=1200)
        _record('image_load_s', round(time.monotonic() - t0, 1))
        tar.unlink()
        images = second.run('docker', 'image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', check=True)
        assert images.stdout.split() == [IMAGE]
        host = _host_folders(tmp_path / 'host', 1000 if os.getuid() == 0 else os.getuid())
        env = {**project['env'], **host['env']}

        def offline_run(*args: str) -> subprocess.CompletedProcess:
            return second.run('docker', 'compose', *OFFLINE_FILES, 'run', '--rm', 'repro', *args,
                              cwd=project['ctx'], env=env, timeout=1800)

        net = offline_run('sh', '-c', 'ls /sys/class/net')
        assert net.returncode == 0 and net.stdout.split() == ['lo'], net.stdout + net.stderr
        t0 = time.monotonic()
        proc = offline_run('smoke', '--variants', 'baseline')
        _record('offline_baseline_run_s', round(time.monotonic() - t0, 1))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert (host['results'] / 'smoke' / 'baseline__seed0__s1.json').is_file()
        _assert_owned_and_readable(host['results'], 1000 if os.getuid() == 0 else os.getuid())
        after = second.run('docker', 'image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', check=True)
        assert after.stdout.split() == [IMAGE], 'nothing was built or pulled'
    finally:
        pid = second.process.pid
        second.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the second daemon is gone (stopped by its own PID)


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_rebuild_after_one_py_change_reuses_the_dependency_layers(engine, project):
    """Last in this file: it changes the copy's package."""
    changed = project['ctx'] / 'npe' / 'provenance.py'
    # unique each time, so an engine cache kept from an earlier run cannot hold this layer already
    changed.write_text(changed.read_text() + f'\n# a one-line change {time.time_ns()}\n')
    t0 = time.monotonic()
    build = engine.run('docker', 'compose', *COMPOSE_FILES, 'build', cwd=project['ctx'],
                       env=project['env'], timeout=1800)
    elapsed = time.monotonic() - t0
    out = build.stdout + build.stderr
    assert build.returncode == 0, out[-4000:]
    _record('rebuild_after_py_change_s', round(elapsed, 1))
    steps = re.split(r'\nStep \d+/\d+ : ', '\n' + out)
    cached = {s.split('\n', 1)[0][:60]: 'Using cache' in s for s in steps[1:]}

    def step(prefix: str) -> bool:
        hits = [v for k, v in cached.items() if k.startswith(prefix)]
        assert hits, f'no build step starting with {prefix!r} in:\n{out[-3000:]}'
        return hits[0]

    assert step('RUN apt-get update'), 'system packages rebuilt'
    assert step('RUN VENV=/opt/venv LOCK='), 'the pinned stack was reinstalled'
    assert step('COPY --from=stack /opt/venv /opt/venv'), 'the stack layer was not reused'
    assert not step('COPY npe/ /tmp/npe-src/npe/'), 'the package change was not picked up'
    proc = compose_run(engine, project, '--list')
    assert proc.returncode == 0 and 'smoke' in proc.stdout
