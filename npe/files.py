"""Writing files so that a reader never sees half of one: temp file in the same folder + rename.

Files get the mode a plain ``open()`` would give them (0666 minus the user's umask), so a results
folder shared with a group stays readable to it. :func:`check_output_dir` tells, before any work
starts, whether a folder can be created and written to.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from npe.errors import UserError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file (flushed to disk) and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename; return the path."""
    return write_bytes_atomic(path, text.encode('utf-8'))


def write_json_atomic(path: str | os.PathLike, payload: Any, indent: int = 2) -> Path:
    """Write ``payload`` as JSON (one trailing newline) with :func:`write_text_atomic`."""
    return write_text_atomic(path, json.dumps(payload, indent=indent) + '\n')


def check_output_dir(path: str | os.PathLike, what: str) -> Path:
    """Raise :class:`UserError` unless the folder ``path`` exists or can be created, and is writable.

    Nothing is created: the first existing ancestor must be a writable folder. ``what`` names the
    flag in the message (``--results-dir``)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f'{what} {path} exists and is not a folder; give a folder')
    probe = path.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f'{what} {path} cannot be created: {probe} is a file, not a folder; give '
                        'another path')
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f'{what} {path}: {probe} is not writable for you; give another path')
    return path


#: The files of the console_to blocks now open, innermost last.
_OPEN: list = []


class _Console(io.TextIOBase):
    """What ``sys.stdout`` / ``sys.stderr`` are inside :func:`console_to`.

    Logging handlers made inside a block keep the stream they found (MMEngine makes its console
    handler when a Runner starts), so they must not keep the block's file: it is closed when the
    block ends and every later message would fail ("--- Logging error --- ... I/O operation on closed
    file"). This stand-in writes to the innermost open block's file, and once none is open, to the
    stream it replaced.
    """

    def __init__(self, real) -> None:
        super().__init__()
        self.real = real

    def _target(self):
        return _OPEN[-1] if _OPEN else self.real

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def fileno(self) -> int:
        return self._target().fileno()   # subprocesses writing into the same log

    def isatty(self) -> bool:
        return False

    @property
    def name(self) -> str:
        return getattr(self._target(), 'name', '<console>')

    @property
    def encoding(self) -> str:
        return getattr(self._target(), 'encoding', 'utf-8')


@contextlib.contextmanager
def console_to(log_file: Path | None):
    """stdout and stderr (MMEngine's console handler included) appended to ``log_file``; None: left
    on the console. Blocks nest; a handler made inside one writes to the console after it ends."""
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, 'a') as handle:
        out, err = sys.stdout, sys.stderr
        _OPEN.append(handle)
        sys.stdout = out if isinstance(out, _Console) else _Console(out)
        sys.stderr = err if isinstance(err, _Console) else _Console(err)
        try:
            yield
        finally:
            handle.flush()
            _OPEN.remove(handle)
            sys.stdout, sys.stderr = out, err
