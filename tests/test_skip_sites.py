"""Every place a test can skip is listed in tests/README.md (and so is seen by whoever reads it)."""
from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SKIP = re.compile(r'pytest\.skip\(|\.skipif\(|importorskip\(|mark\.skip\(|pytest\.xfail\(|mark\.xfail')


def skip_sites(root: Path = TESTS) -> dict[str, int]:
    sites: dict[str, int] = {}
    for path in sorted(root.rglob('*.py')):
        if path.name == Path(__file__).name:
            continue
        count = len(SKIP.findall(path.read_text()))
        if count:
            sites[path.relative_to(root).as_posix()] = count
    return sites


def listed_sites() -> dict[str, int]:
    rows = re.findall(r'^\| `([^`]+\.py)` \| (\d+) \|', (TESTS / 'README.md').read_text(), re.M)
    return {name: int(count) for name, count in rows}


def test_every_skip_site_is_listed_in_tests_readme():
    assert skip_sites() == listed_sites(), ('skip sites in the code vs tests/README.md: '
                                            f'{skip_sites()} != {listed_sites()}')


def test_the_guard_sees_every_kind_of_skip(tmp_path):
    """Positive control: each way of skipping is counted."""
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' / 'test_probe.py').write_text(
        'import pytest\nnp = pytest.importorskip("numpy")\n@pytest.mark.skipif(True, reason="r")\n'
        'def test_a():\n    pytest.skip("probe")\n@pytest.mark.skip(reason="x")\ndef test_b():\n    pass\n'
        '@pytest.mark.xfail\ndef test_c():\n    pytest.xfail("y")\n')
    assert skip_sites(tmp_path) == {'sub/test_probe.py': 6}


def _child_pytest(tmp_path, body: str, ci: str | None):
    """A child pytest over one file, with tests/conftest.py loaded as a plugin (its CI hook)."""
    import os
    import subprocess
    import sys

    probe = tmp_path / 'test_probe_ci.py'
    probe.write_text(body)
    env = {k: v for k, v in os.environ.items() if k not in ('CI', 'PYTEST_ADDOPTS')}
    if ci is not None:
        env['CI'] = ci
    env['PYTHONPATH'] = os.pathsep.join([str(TESTS), env.get('PYTHONPATH', '')])
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', 'conftest',
                           '--rootdir', str(tmp_path), str(probe)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_skip_fails_in_ci_and_only_there(tmp_path):
    body = ('import pytest\n\ndef test_needs_a_daemon():\n    pytest.skip("no daemon here")\n\n'
            '@pytest.mark.skipif(True, reason="a GPU is present")\ndef test_cpu_twin():\n    pass\n')
    outside = _child_pytest(tmp_path, body, None)
    assert outside.returncode == 0 and '2 skipped' in outside.stdout, outside.stdout[-1500:]
    in_ci = _child_pytest(tmp_path, body, 'true')
    assert in_ci.returncode == 1, in_ci.stdout[-1500:]
    # none allowed: the skip in the test body fails it, the skipif marker's (at set-up) is an error
    assert in_ci.stdout.splitlines()[-1].startswith('1 failed, 1 error in '), in_ci.stdout[-1500:]
    assert 'skipped in CI, which counts as a failure' in in_ci.stdout and 'no daemon here' in in_ci.stdout
    assert 'a GPU is present' in in_ci.stdout
