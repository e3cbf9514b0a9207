"""Training fidelity of the `upstream` protocol against the reference code's own numbers
(benchmarks/fidelity_fixture/): one seed, the full 1,600 iterations, through benchmarks/fidelity.py;
and the fixture's set proven identical to the one the reference numbers were measured on."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / 'benchmarks' / 'fidelity_fixture'

#: |kit - reference| allowed per seed (mIoU points): the acceptance bound of issue 12. s = 2 hinges
#: on the rarest classes (a few hundred pixels), where float rounding across CPUs moves one seed by
#: a few points; the benchmark holds the mean over seeds within 1.0.
TOLERANCE = {'npe_s1': 1.0, 'npe_main_only': 1.0, 'npe_s2': 4.0}


def test_the_fixture_set_is_the_reference_set(tmp_path):
    """Every decoded pixel of the archived set matches PIXELS.sha256 (960 files), and a changed pixel
    is caught (positive control)."""
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    import cv2
    import fidelity

    data = fidelity.generate(FIXTURE, tmp_path / 'data')
    want = fidelity.expected_checksums(FIXTURE)
    assert len(want) == 960 and fidelity.pixel_checksums(data) == want
    label = data / 'annotations' / 'training' / '0000.png'
    pixels = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    pixels[0, 0] = (int(pixels[0, 0]) + 1) % 7
    cv2.imwrite(str(label), pixels)
    assert fidelity.pixel_checksums(data) != want


@pytest.mark.integration
@pytest.mark.timeout(1500)
def test_upstream_trains_like_the_reference_seed0(tmp_path):
    out = tmp_path / 'rows.json'
    proc = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'fidelity.py'), '--seeds', '0',
                           '--npe-only', '--out', str(tmp_path / 'fid'), '--json', str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    kit, ref = rows['kit']['0'], rows['reference']['0']
    report = {row: (kit[row], ref[row]) for row in TOLERANCE}
    for row, bound in TOLERANCE.items():
        assert abs(kit[row] - ref[row]) <= bound, (row, report)
    # The learned prior ranks the classes as the reference's does, with its slope (1.62 for seed 0).
    assert 1.3 < kit['npe_prior_slope'] < 1.9, kit['npe_prior_slope']
