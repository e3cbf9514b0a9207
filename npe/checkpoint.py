"""Loading MMEngine checkpoints on every torch the kit supports (2.1 in the CUDA image, 2.13 on hosts).

MMEngine checkpoints carry the message hub (``HistoryBuffer``) and numpy scalars/arrays besides the
weights. Where torch can extend its weights-only allow-list (``add_safe_globals``, torch >= 2.4), the
few harmless types MMEngine itself writes are added to it, so loading stays restricted for everything
else. Older torch (2.1.2 in the CUDA image) has a fixed allow-list that refuses ``HistoryBuffer``:
there :func:`load_checkpoint` loads in full, as MMEngine itself does on that torch.
"""
from __future__ import annotations

import functools
import pickle


def _history_buffer_getattr(obj, name: str):
    """``getattr`` for checkpoints, limited to the public methods defined on ``HistoryBuffer``."""
    import types

    from mmengine.logging import HistoryBuffer

    if obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_') \
            and isinstance(HistoryBuffer.__dict__.get(name), types.FunctionType):
        return HistoryBuffer.__dict__[name]
    raise pickle.UnpicklingError(f'checkpoint asks for getattr({obj!r}, {name!r}); only '
                                 'HistoryBuffer methods are allowed')


@functools.lru_cache(maxsize=None)
def allow_mmengine_checkpoints() -> None:
    """Allow-list the non-tensor types that MMEngine writes into its checkpoints (idempotent)."""
    import torch

    add = getattr(getattr(torch, 'serialization', None), 'add_safe_globals', None)
    if add is None:  # torch < 2.4: weights_only is off by default, nothing to do
        return
    import numpy as np
    from mmengine.logging import HistoryBuffer

    safe: list = [HistoryBuffer, np.ndarray, np.dtype]
    # HistoryBuffer pickles its statistics methods (HistoryBuffer.min, ...); pickle protocol 2 writes
    # them as getattr(HistoryBuffer, 'min'). Allow a getattr restricted to exactly that, never the
    # builtin (which would open the door to arbitrary code).
    safe += [(_history_buffer_getattr, '__builtin__.getattr'),
             (_history_buffer_getattr, 'builtins.getattr')]
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    safe += [_reconstruct, scalar]
    # numpy >= 1.25 pickles dtypes by their classes (np.dtypes.Float64DType, ...).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    add(safe)


def can_restrict_loads() -> bool:
    """Whether this torch can load MMEngine checkpoints weights-only (it has ``add_safe_globals``)."""
    import torch

    return hasattr(getattr(torch, 'serialization', None), 'add_safe_globals')


def load_checkpoint(path, map_location: str = 'cpu'):
    """``torch.load`` of an MMEngine checkpoint file: weights-only with MMEngine's types allowed where
    torch supports it, else (torch < 2.4) a full load, as MMEngine does on that torch."""
    import torch

    if can_restrict_loads():
        allow_mmengine_checkpoints()
        return torch.load(str(path), map_location=map_location, weights_only=True)
    return torch.load(str(path), map_location=map_location, weights_only=False)


def unreadable_reason(path) -> str | None:
    """Why the checkpoint file ``path`` cannot be loaded (truncated, not a checkpoint), or None.

    A torch zip checkpoint is checked by its table of contents (a cut-off file has none), an old
    non-zip one by loading it; nothing is executed either way.
    """
    import os
    import zipfile
    from pathlib import Path

    path = Path(path)
    try:
        if os.path.getsize(path) == 0:
            return 'the file is empty'
        with open(path, 'rb') as handle:
            magic = handle.read(4)
        if magic == b'PK\x03\x04' and not zipfile.is_zipfile(path):
            return 'cut off: the end of the file is missing, e.g. killed while it was saved'
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
            if not any(n.endswith('data.pkl') for n in names):
                return 'a zip file without torch data'
            return None
        import torch

        # restricted even where load_checkpoint is not (torch < 2.4): this file is not trusted yet
        allow_mmengine_checkpoints()
        torch.load(path, map_location='cpu', weights_only=True)
        return None
    except OSError as exc:
        return f'cannot be read ({exc.strerror or exc})'
    except pickle.UnpicklingError:
        return 'holds Python objects a safe (weights-only) load refuses; it is not an MMSeg checkpoint'
    except Exception as exc:  # torch/pickle/zip raise many types for a damaged file
        text = ' '.join(str(exc).split())[:120]
        return f'truncated or not a torch checkpoint ({type(exc).__name__}: {text})'
