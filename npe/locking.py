"""Locks between processes: one per training job, so two drivers started on the same recipe never
train a run twice, one per dataset folder (one process builds it, the others wait for it), and one per
shared folder that several of them update (the examples index).

The lock is an OS file lock (``filelock``) on ``<work dir>.lock`` beside the job's work dir: the kernel
drops it when its process dies (killed, preempted, out of memory), so a stale lock is simply taken
over by the next driver.
"""
from __future__ import annotations

import contextlib
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


def job_lock(work_dir: str | Path) -> FileLock:
    """The lock of the training job whose work dir is ``work_dir`` (not yet acquired)."""
    return sibling_lock(work_dir)


def folder_lock(folder: str | Path) -> FileLock:
    """The lock of a read-merge-write of files in ``folder`` that several processes update
    (``<folder>/.lock``; not yet acquired, usable as a context manager)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / '.lock'))


def try_acquire(lock: FileLock) -> bool:
    """Acquire ``lock`` now if it is free; False if another process holds it."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    return True
