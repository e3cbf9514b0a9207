"""Locks between processes: one per training job, so two drivers started on the same recipe never
train a run twice, and one per shared folder that several of them update (the examples index).

The lock is an OS file lock (``filelock``) on ``<work dir>.lock`` beside the job's work dir: the kernel
drops it when its process dies (killed, preempted, out of memory), so a stale lock is simply taken
over by the next driver.
"""
from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout


def job_lock(work_dir: str | Path) -> FileLock:
    """The lock of the training job whose work dir is ``work_dir`` (not yet acquired)."""
    work_dir = Path(work_dir)
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(work_dir.parent / f'.{work_dir.name}.lock'))


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
