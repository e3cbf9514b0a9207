"""npe.provenance: the machine facts of every result file and the grep-able NPE_RESULT line."""
from __future__ import annotations

import json

import pytest

from npe import paths, provenance

CPUINFO = """processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl amx_tile

processor	: 1
model name	: something else
flags		: fpu
"""

ARM_CPUINFO = """processor	: 0
BogoMIPS	: 243.75
Features	: fp asimd evtstrm aes sve sve2
CPU implementer	: 0x41
"""


def test_cpu_model_and_flags_come_from_the_first_processor():
    facts = provenance.cpu(CPUINFO)
    assert facts['cpu_model'] == 'Intel(R) Xeon(R) Platinum 8480+'
    assert facts['cpu_flags'] == ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw',
                                  'avx512vl', 'amx_tile']
    assert facts['cpu_isa']  # torch's dispatch level on this machine, e.g. AVX2 / AVX512
    assert facts['cpu_count'] >= 1


def test_arm_features_are_read_too():
    facts = provenance.cpu(ARM_CPUINFO)
    assert facts['cpu_flags'] == ['asimd', 'sve', 'sve2']
    assert facts['cpu_model']  # falls back to the platform's name


def test_this_machine_is_described():
    facts = provenance.machine()
    assert set(facts) >= {'image', 'gpu_count', 'gpus', 'gpu_driver', 'cuda_runtime', 'cuda_driver',
                          'cudnn', 'cpu_model', 'cpu_isa', 'cpu_flags', 'cpu_count'}
    assert facts['cpu_model'] and isinstance(facts['cpu_flags'], list)
    json.dumps(facts)  # goes into a JSON file as is


def test_driver_version_from_the_proc_file():
    text = ('NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n'
            'GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n')
    assert provenance.driver_version(text) == '550.54.15'
    assert provenance.driver_version('nothing here') is None


def test_cuda_version_text():
    assert provenance._cuda_version_text(12040) == '12.4'
    assert provenance._cuda_version_text(11080) == '11.8'
    assert provenance._cuda_version_text(0) is None


def test_image_facts_come_from_the_image_environment(monkeypatch):
    monkeypatch.delenv('NPE_IMAGE', raising=False)
    assert provenance.image() is None and provenance.git_commit_fallback() is None
    monkeypatch.setenv('NPE_IMAGE', 'npe-kit:cuda')
    monkeypatch.setenv('NPE_IMAGE_COMMIT', 'abc123')
    assert provenance.image() == {'tag': 'npe-kit:cuda', 'commit': 'abc123'}
    assert provenance.git_commit_fallback() == 'abc123'
    monkeypatch.setenv('NPE_IMAGE_COMMIT', '')
    assert provenance.image() == {'tag': 'npe-kit:cuda', 'commit': None}


def test_result_environment_has_the_machine_facts():
    from npe.provenance import environment

    env = environment()
    assert env['mmcv'] == '2.1.0' and env['cpu_model'] and 'gpu_count' in env and 'image' in env


def test_result_line_round_trip():
    payload = {'status': 'ok', 'recipe': {'name': 'stare_unet', 'sha256': 'x'}, 'variant': 'npe1',
               'seed': 2, 'scale_factor': 'auto', 'scale_factor_value': 2.5, 'metrics': {'mIoU': 81.25}}
    line = provenance.result_line(payload)
    assert line.startswith('NPE_RESULT {') and '\n' not in line
    log = f'training...\n{line}\nNPE_RESULT not json\n  {provenance.result_line({"status": "failed"})}\n'
    records = provenance.parse_result_lines(log)
    assert records[0] == {'recipe': 'stare_unet', 'variant': 'npe1', 'seed': 2, 's': 'auto', 's_value': 2.5,
                          'mIoU': 81.25, 'status': 'ok'}
    assert records[1]['status'] == 'failed' and records[1]['mIoU'] is None
    assert len(records) == 2


@pytest.mark.parametrize('value, expected', [('1', True), ('true', True), ('YES', True), ('0', False),
                                             ('', False), ('no', False)])
def test_offline_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv('NPE_OFFLINE', value)
    assert paths.offline() is expected
    assert paths.offline(True) is True
