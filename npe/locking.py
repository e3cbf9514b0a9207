"""Locks between processes: one per training job, so two drivers started on the same recipe never
train a run twice, one per dataset folder (one process builds it, the others wait for it), and one per
shared folder that several of them update (the examples index).

The lock is an OS file lock (``flock``) on ``.<work dir name>.lock`` beside the job's work dir: the
kernel drops it when its process dies (killed, preempted, out of memory), so a stale lock is simply
taken over by the next driver. A job's lock file is removed when it is released (:class:`JobLock`), so
no empty lock files stay behind.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout


def sibling_lock(path: str | Path) -> FileLock:
    """The lock of whatever is built at ``path``: ``.<name>.lock`` beside it (not yet acquired)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.parent / f'.{path.name}.lock'))


@contextlib.contextmanager
def tidy_lock(path: str | Path) -> Iterator[None]:
    """Hold :func:`sibling_lock` of ``path`` and remove the lock file before releasing it, so no lock
    file stays beside a download or a dataset folder.

    A process arriving in that instant may lock a fresh file. Callers re-check under the lock whether
    the work is still to do, so at worst work is repeated (into its own temporary file), never mixed.
    """
    lock = sibling_lock(path)
    with lock:
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                Path(lock.lock_file).unlink()


class JobLock:
    """An exclusive ``flock`` on ``lock_file`` that removes the file when released.

    ``filelock`` keeps the file so that waiters share its inode; here the file goes while still held,
    and whoever then gets a lock checks that it holds the file now at that path (same inode), else
    tries again on the new one: one holder at a time, and no file left behind.
    """

    def __init__(self, lock_file: str | Path) -> None:
        self.lock_file = str(lock_file)
        self._fd: int | None = None

    @property
    def is_locked(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float | None = None) -> None:
        """Wait for the lock (``timeout=None``), or take it only if free now (``timeout=0``: else
        ``filelock.Timeout``, as ``FileLock`` raises)."""
        flags = fcntl.LOCK_EX | (fcntl.LOCK_NB if timeout == 0 else 0)
        while self._fd is None:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, flags)
            except BlockingIOError:
                os.close(fd)
                raise Timeout(self.lock_file) from None
            try:
                here = os.stat(self.lock_file)
                held = os.fstat(fd)
                mine = (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)
            except FileNotFoundError:
                mine = False   # the holder before removed it as it released: lock the new one
            if mine:
                self._fd = fd
            else:
                os.close(fd)

    def release(self) -> None:
        """Remove the lock file, then drop the lock (a no-op when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_file)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> 'JobLock':
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def job_lock(work_dir: str | Path) -> JobLock:
    """The lock of the training job whose work dir is ``work_dir``: ``.<name>.lock`` beside it (not
    yet acquired; gone again once released)."""
    work_dir = Path(work_dir)
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    return JobLock(work_dir.parent / f'.{work_dir.name}.lock')


def folder_lock(folder: str | Path) -> FileLock:
    """The lock of a read-merge-write of files in ``folder`` that several processes update
    (``<folder>/.lock``; not yet acquired, usable as a context manager)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / '.lock'))


def try_acquire(lock: FileLock | JobLock) -> bool:
    """Acquire ``lock`` now if it is free; False if another process holds it."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    return True
