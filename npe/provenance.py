"""Where a run ran: the Docker image, the GPUs, the NVIDIA driver and CUDA, the CPU model and the
instruction set torch dispatches to. Recorded in every result file (``environment``), because float
results differ across CPU models and GPUs: comparisons across machines need these facts.

Also the one machine-readable line per finished run that CI logs are grepped for
(:func:`result_line`, ``NPE_RESULT {...}``).

And when: :func:`utc_now`, the one timestamp format of result files, train records and dataset
markers.

Every fact is best-effort: a missing tool or file gives ``None``, never an error.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping

RESULT_PREFIX = 'NPE_RESULT'

#: CPU flags worth recording (vector units that change float reduction order and speed)
ISA_FLAGS = ('sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni',
             'avx512_bf16', 'avx512_fp16', 'amx_tile', 'amx_bf16', 'amx_int8', 'asimd', 'sve', 'sve2')

CPUINFO = Path('/proc/cpuinfo')
NVIDIA_PROC_VERSION = Path('/proc/driver/nvidia/version')


def utc_now() -> str:
    """Now as ISO 8601 UTC, second resolution, ``Z`` suffix (``2026-01-31T12:00:00Z``): the ``created``
    field of result files, ``finished`` of train records, ``prepared`` of dataset markers."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def image() -> dict | None:
    """The Docker image this process runs in, as the image's build recorded it (``NPE_IMAGE``: tag,
    ``NPE_IMAGE_COMMIT``: the git commit it was built from); None outside the kit's image."""
    tag = os.environ.get('NPE_IMAGE') or None
    if tag is None:
        return None
    return {'tag': tag, 'commit': os.environ.get('NPE_IMAGE_COMMIT') or None}


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """First processor's ``key: value`` fields of /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(':')
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu(cpuinfo: str | None = None) -> dict:
    """CPU model, vendor flags that matter for numerics, torch's dispatch level, logical CPUs."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors='replace')
        except OSError:
            cpuinfo = ''
    fields = _cpuinfo_fields(cpuinfo)
    model = fields.get('model name') or fields.get('Model') or fields.get('cpu model') or platform.processor()
    flags = set((fields.get('flags') or fields.get('Features') or '').split())
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count()
    return {'cpu_model': model or platform.machine() or None,
            'cpu_arch': platform.machine() or None,
            'cpu_isa': _torch_cpu_capability(),
            'cpu_flags': [f for f in ISA_FLAGS if f in flags],
            'cpu_count': available}


def _torch_cpu_capability() -> str | None:
    """The vector instruction set torch's CPU kernels dispatch to (e.g. ``AVX2``, ``AVX512``)."""
    try:
        import torch
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 - old torch or no torch: the fact is simply unknown
        return None


def _nvidia_smi(*query: str) -> list[str] | None:
    exe = shutil.which('nvidia-smi')
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, f'--query-gpu={",".join(query)}', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return lines if out.returncode == 0 and lines else None


def driver_version(proc_text: str | None = None) -> str | None:
    """NVIDIA kernel driver version: nvidia-smi, else /proc/driver/nvidia/version."""
    if proc_text is None:
        lines = _nvidia_smi('driver_version')
        if lines:
            return lines[0]
        try:
            proc_text = NVIDIA_PROC_VERSION.read_text()
        except OSError:
            return None
    for word in proc_text.split():
        parts = word.split('.')
        if len(parts) >= 2 and all(p.isdigit() for p in parts):
            return word
    return None


def _cuda_version_text(value: int | None) -> str | None:
    """CUDA's integer version (e.g. 12040) as text (``12.4``)."""
    if not value:
        return None
    return f'{value // 1000}.{(value % 1000) // 10}'


def gpu() -> dict:
    """GPU names and count as torch sees them, the driver, the CUDA versions (torch's build and the
    driver's), cuDNN. Zeros and Nones on a machine without a usable GPU."""
    facts: dict[str, Any] = {'gpu_count': 0, 'gpus': [], 'gpu_driver': None, 'cuda_runtime': None,
                             'cuda_driver': None, 'cudnn': None}
    try:
        import torch
    except ImportError:
        return facts
    facts['cuda_runtime'] = torch.version.cuda
    if not torch.cuda.is_available():
        return facts
    count = torch.cuda.device_count()
    facts['gpu_count'] = count
    facts['gpus'] = [torch.cuda.get_device_name(i) for i in range(count)]
    facts['gpu_driver'] = driver_version()
    try:
        facts['cuda_driver'] = _cuda_version_text(torch._C._cuda_getDriverVersion())
    except Exception:  # noqa: BLE001 - private API: absent in some builds
        facts['cuda_driver'] = None
    try:
        facts['cudnn'] = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001
        facts['cudnn'] = None
    return facts


def machine() -> dict:
    """Every fact of this module, flat, for a result file's ``environment``."""
    return {'image': image(), **gpu(), **cpu()}


def git_commit_fallback() -> str | None:
    """The commit the image was built from, for runs where no checkout is at hand (in the image)."""
    info = image()
    return info['commit'] if info else None


def result_line(payload: Mapping) -> str:
    """One grep-able line for a finished (or failed) run: ``NPE_RESULT {json}`` with recipe, variant,
    seed, s (the value used, and ``auto`` where chosen automatically), mIoU and status."""
    metrics = payload.get('metrics') or {}
    recipe = payload.get('recipe') or {}
    s = payload.get('scale_factor')
    record = {'recipe': recipe.get('name') if isinstance(recipe, Mapping) else recipe,
              'variant': payload.get('variant'), 'seed': payload.get('seed'), 's': s,
              's_value': payload.get('scale_factor_value', None if s == 'auto' else s),
              'mIoU': metrics.get('mIoU'), 'status': payload.get('status')}
    return f'{RESULT_PREFIX} {json.dumps(record, sort_keys=False, separators=(",", ":"))}'


def parse_result_lines(text: str) -> list[dict]:
    """The records of every ``NPE_RESULT`` line in ``text`` (e.g. a CI log)."""
    out = []
    for line in text.splitlines():
        head, sep, rest = line.strip().partition(' ')
        if head == RESULT_PREFIX and sep:
            try:
                out.append(json.loads(rest))
            except ValueError:
                continue
    return out


def environment() -> dict:
    """Versions and machine facts recorded in every result file."""
    import mmcv
    import mmengine
    import mmseg
    import torch

    from npe import paths
    from npe.constants import __version__

    commit = None
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=paths.repo_root(), capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    cuda = torch.version.cuda if torch.cuda.is_available() else None
    return dict(python=platform.python_version(), torch=torch.__version__, cuda=cuda,
                mmcv=mmcv.__version__, mmengine=mmengine.__version__, mmseg=mmseg.__version__,
                npe=__version__, git_commit=commit or git_commit_fallback(),
                gpu=torch.cuda.get_device_name(0) if cuda else None,
                cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads(),
                **machine())
