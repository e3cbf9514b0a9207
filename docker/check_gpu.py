"""The GPU service's start-up check (docker/entrypoint.sh runs it when NPE_REQUIRE_GPU=1), before any
download or training: torch must see a CUDA device and an mmcv CUDA op (nms) must run on it.

Exit status 0 and no output when the GPU is usable; else exactly one line on stderr saying what is
wrong and what to fix, and exit status 3. Whatever torch, mmcv or the CUDA libraries print while
being probed is swallowed (the line names the gist), so the line stays the only one.
"""
from __future__ import annotations

import os
import sys
import tempfile
import warnings

FIX = ('this is the GPU service: install the NVIDIA driver and the NVIDIA Container Toolkit on the host '
       '(check with `docker run --rm --gpus all ubuntu nvidia-smi`), or run on CPU with '
       '`-f docker-compose.yml -f docker/compose.cpu.yml`')


def _one_line(text: str, limit: int = 240) -> str:
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def probe() -> str | None:
    """None when torch sees a CUDA device and mmcv's nms runs on it; else what is wrong."""
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure is the answer
        return f'torch does not import ({type(exc).__name__}: {exc})'
    if torch.version.cuda is None:
        return f'this image\'s torch {torch.__version__} is built without CUDA (a CPU image)'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        available = torch.cuda.is_available()
        count = torch.cuda.device_count() if available else 0
    if not available or count < 1:
        why = '; '.join(str(w.message) for w in caught)
        visible = os.environ.get('CUDA_VISIBLE_DEVICES')
        where = f' (CUDA_VISIBLE_DEVICES={visible!r})' if visible is not None else ''
        return f'torch {torch.__version__} sees no CUDA device{where}' + (f': {why}' if why else '')
    try:
        from mmcv.ops import nms
    except Exception as exc:  # noqa: BLE001
        return f'mmcv.ops does not import ({type(exc).__name__}: {exc})'
    try:
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]], device='cuda')
        scores = torch.tensor([0.9, 0.8, 0.7], device='cuda')
        _, keep = nms(boxes, scores, 0.5)
        torch.cuda.synchronize()
        kept = sorted(keep.cpu().tolist())
    except Exception as exc:  # noqa: BLE001
        return (f'mmcv.ops.nms fails on {torch.cuda.get_device_name(0)} ({type(exc).__name__}: {exc}); '
                f'the image\'s mmcv has no CUDA ops for this GPU or driver')
    if kept != [0, 2]:
        return f'mmcv.ops.nms on CUDA gives indices {kept}, expected [0, 2]'
    return None


def main() -> int:
    # C libraries write to file descriptor 2 directly: park it in a temporary file while probing
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode='w+b') as noise:
        os.dup2(noise.fileno(), 2)
        try:
            problem = probe()
        except BaseException as exc:  # noqa: BLE001 - never a traceback instead of the line
            problem = f'the GPU check failed ({type(exc).__name__}: {exc})'
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
    if problem is None:
        return 0
    print(f'error: no usable GPU: {_one_line(problem)}; {FIX}', file=sys.stderr)
    return 3


if __name__ == '__main__':
    sys.exit(main())
