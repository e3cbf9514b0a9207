"""Job locks (npe.locking.JobLock): one holder at a time, across processes, and no lock file left."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

from npe.locking import job_lock, try_acquire


def test_released_lock_leaves_no_file(tmp_path):
    lock = job_lock(tmp_path / 'runs' / 'npe1__seed0')
    assert try_acquire(lock) and lock.is_locked
    assert (tmp_path / 'runs' / '.npe1__seed0.lock').is_file()
    lock.release()
    assert not lock.is_locked and list((tmp_path / 'runs').iterdir()) == []


def test_another_process_holding_it_keeps_it(tmp_path):
    work = tmp_path / 'npe1__seed0'
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time; from npe.locking import job_lock; '
         f'lock = job_lock({str(work)!r}); lock.acquire(); print("held", flush=True); '
         'sys.stdin.readline(); lock.release()'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        mine = job_lock(work)
        assert not try_acquire(mine)
        holder.stdin.write('\n')
        holder.stdin.flush()
        holder.wait(timeout=60)
        mine.acquire()   # free now, on a new file
        assert mine.is_locked
        mine.release()
        assert list(tmp_path.iterdir()) == []
    finally:
        holder.kill()


def test_a_waiter_never_shares_the_lock_with_a_newcomer(tmp_path):
    """The holder removes the file as it releases: a waiter blocked on the old file must not think it
    holds the lock while a newcomer locks the new file at the same path."""
    work = tmp_path / 'job'
    first, waiter, newcomer = job_lock(work), job_lock(work), job_lock(work)
    first.acquire()
    thread = threading.Thread(target=waiter.acquire)
    thread.start()
    time.sleep(0.2)
    first.release()
    got = try_acquire(newcomer)
    time.sleep(0.2)
    assert not (got and waiter.is_locked)
    if got:
        newcomer.release()
    thread.join(timeout=10)
    assert waiter.is_locked
    waiter.release()
    assert list(tmp_path.iterdir()) == []
