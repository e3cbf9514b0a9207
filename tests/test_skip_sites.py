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
