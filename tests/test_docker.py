"""The Docker image and `docker compose run repro <recipe>`, for real: a Docker engine started by the
tests, the Debian base made by debootstrap, the CPU image built through docker/Dockerfile by Compose,
the smoke recipe run as a non-root user with its files landing on the host owned by that user.

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
    assert gpu['shm_size'] and gpu['user'] and gpu['image'] == 'npe-kit:cuda'
    assert {v['target'] for v in gpu['volumes']} == {'/workspace/segmentation/data', '/workspace/results',
                                                      '/workspace/work_dirs'}
    cpu = json.loads(_compose_config(*COMPOSE_FILES).stdout)['services']['repro']
    assert 'deploy' not in cpu, 'the CPU override must drop the GPU reservation'
    assert cpu['build']['args']['LOCK'] == 'docker/requirements-cpu.lock'
    assert cpu['image'] == cpu['build']['args']['NPE_IMAGE'] == 'npe-kit:cpu'


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
    """The user the container runs as: this user, or a fresh non-root UID when we are root."""
    return os.getuid() if os.getuid() != 0 else 4242


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
    env = {'COMPOSE_PROJECT_NAME': PROJECT, 'NPE_IMAGE': IMAGE, 'NPE_CPU_BASE_IMAGE': BASE_IMAGE,
           'NPE_UID': str(uid), 'NPE_GID': str(uid), 'NPE_GIT_COMMIT': commit or 'unknown',
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


def compose_run(engine, project, *args: str, build: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
    """`docker compose run [--build] --rm repro ARGS` (the compose file's pull_policy builds anyway)."""
    flags = ('--build', '--rm') if build else ('--rm',)
    return engine.run('docker', 'compose', *COMPOSE_FILES, 'run', *flags, 'repro', *args,
                      cwd=project['ctx'], env=project['env'], timeout=timeout)


def _owners(folder: Path) -> set[int]:
    return {p.stat().st_uid for p in folder.rglob('*')}


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
    assert _owners(results) == {project['uid']}, 'every file on the host belongs to the host user'
    assert _owners(project['work_dirs']) <= {project['uid']}
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
    assert '# Long-tailed synthetic' in proc.stdout and (results / 'tables' / 'longtail_synth.md').is_file()


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
