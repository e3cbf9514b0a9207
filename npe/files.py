"""Writing files so that a reader never sees half of one: temp file in the same folder + rename.

Files get the mode a plain ``open()`` would give them (0666 minus the user's umask), so a results
folder shared with a group stays readable to it. Temporary files are unique per writer; those of
killed writers are removed by :func:`clean_stale_temps`. :func:`check_output_dir` tells, before any
work starts, whether a folder can be created and written to.
"""
from __future__ import annotations

import errno
import json
import os
import socket
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
    # The writer (process id and host) in the name tells a killed writer's leftover from a running
    # one's (clean_stale_temps); the random part keeps two writers of one file apart.
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.{_writer_id()}.', suffix='.tmp', dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not exc.filename:   # a full disk's one line names the file
            exc.filename = str(path)
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

    Nothing is created. Every part of the path that exists must be a folder (or a link to one); a
    symbolic link whose target is missing (an unmounted disk, a moved folder) is refused, since
    creating the folder through it fails after the work, or creates a folder where a mount was meant
    to be. The deepest existing part must be writable. ``what`` names the flag or argument in the
    message (``--results-dir``). Returns ``path`` (user's ``~`` expanded)."""
    path = Path(path).expanduser()
    absolute = Path(os.path.abspath(path))   # lexical: links are looked at one by one below
    current = Path(absolute.anchor)
    deepest = current
    for part in absolute.parts[1:]:
        current = current / part
        if current.is_symlink() and not current.exists():
            target = os.readlink(current)
            if _is_link_loop(current):   # "not mounted?" would send the user looking for a disk
                raise UserError(f'{what} {path}: {current} is a loop of symbolic links (it leads back to '
                                f'itself through {target}); remove or fix the link, or give another folder')
            raise UserError(f'{what} {path}: {current} is a symbolic link to {target}, which does not '
                            f'exist (not mounted?); mount or create {target}, or give another folder')
        if not current.exists():
            break   # this part and the ones below it are to be created
        if not current.is_dir():
            if current == absolute:
                raise UserError(f'{what} {path} exists and is not a folder; give a folder')
            raise UserError(f'{what} {path} cannot be created: {current} is a file, not a folder; give '
                            'another path')
        deepest = current
    if not os.access(deepest, os.W_OK | os.X_OK) or not _can_create_in(deepest):
        raise UserError(f'{what} {path}: {deepest} is not writable for you; give another path')
    return path


def _is_link_loop(link: Path) -> bool:
    try:
        os.stat(link)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _can_create_in(folder: Path) -> bool:
    """Whether a folder can really be made in ``folder``: ``os.access`` says yes to root everywhere,
    also in ``/proc`` or on a read-only file system. An empty folder is made and removed."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix='.npe-check-', dir=folder))
    except OSError:
        return False
    return True


#: Temporary files older than this whose writer cannot be told (no process id in the name) are
#: leftovers of a killed writer (seconds).
STALE_TEMP_AGE_S = 3600


def _host() -> str:
    return socket.gethostname().split('.')[0].replace('@', '_') or 'host'


def _writer_id() -> str:
    """``<pid>@<host>``: who writes a temporary file (hosts share result folders under Slurm)."""
    return f'{os.getpid()}@{_host()}'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def writer_gone(writer: str) -> bool | None:
    """Whether the writer ``<pid>@<host>`` (:func:`_writer_id`) has ended: True / False for one of this
    host (this process counts as running), None where this host cannot tell (another host, no id)."""
    pid, _, host = writer.partition('@')
    if not (pid.isdigit() and host == _host()):
        return None
    return int(pid) != os.getpid() and not _pid_alive(int(pid))


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of writers that were killed before their rename, in ``folder``.

    :func:`write_bytes_atomic` names them ``.<name>.<pid>@<host>.<random>.tmp``: one of this host whose
    process no longer runs is removed; one of another host, or without a writer in its name (older
    kit versions), only after :data:`STALE_TEMP_AGE_S`. Files of running writers are left alone.
    Returns the files removed."""
    import time

    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob('.*.tmp'):
        fields = tmp.name[1:-len('.tmp')].rsplit('.', 2)
        try:
            stale = writer_gone(fields[1] if len(fields) == 3 else '')
            if stale is None:
                stale = time.time() - tmp.lstat().st_mtime > STALE_TEMP_AGE_S
            if stale and tmp.is_file():
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:   # another run cleaned it first
            continue
    return removed
