"""Downloads against real sockets on 127.0.0.1: a refused connection and a stalled server end quickly
with the reason in the error (issue 13), with the kit's default retry settings."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CHECKSUM = 'sha256:' + '0' * 64


def npe_data(tmp: Path, url: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(('NPE_DOWNLOAD_', 'NPE_MIRROR'))}
    full.update(env)
    start = time.monotonic()
    proc = subprocess.run([str(BIN / 'npe-data'), 'checkpoint', url, '--checksum', CHECKSUM,
                           '--data-root', str(tmp / 'data')], capture_output=True, text=True,
                          env=full, timeout=120)
    return proc, time.monotonic() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_connection_refused_is_not_retried_for_long(tmp_path):
    port = free_port()   # closed again: nothing listens there
    proc, took = npe_data(tmp_path, f'http://127.0.0.1:{port}/model.pth')
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.startswith(('error: ', 'note: ')) and 'connection refused' in proc.stderr
    assert took < 15, took  # the default back-off (2 + 4 + 8 + 16 s) is not spent on a closed port
    assert not list((tmp_path / 'data').rglob('*.pth'))


def test_stalled_server_times_out_with_the_reason(tmp_path):
    """The server sends headers and 10 of 1000 bytes, then nothing."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen()
    port = listener.getsockname()[1]
    held = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' + b'x' * 10)
            held.append(conn)   # kept open, silent

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        proc, took = npe_data(tmp_path, f'http://127.0.0.1:{port}/model.pth', NPE_DOWNLOAD_TIMEOUT='1')
    finally:
        listener.close()
        for conn in held:
            conn.close()
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and 'stalled server' in errors[0], proc.stderr
    assert took < 20, took
    assert len(held) == 2  # one quick retry (resuming the 10 bytes), then the message


def test_a_python_without_tar_filters_refuses_to_unpack(tmp_path, monkeypatch):
    """Debian bookworm's Python 3.11.2 (the CPU image) has no PEP 706 filters: one clear line."""
    import tarfile

    from npe.datasets import download
    from npe.errors import UserError

    archive = tmp_path / 'a.tar'
    (tmp_path / 'f.txt').write_text('x')
    with tarfile.open(archive, 'w') as tar:
        tar.add(tmp_path / 'f.txt', arcname='f.txt')
    monkeypatch.setattr(download, 'HAS_TAR_FILTERS', False)
    with pytest.raises(UserError, match='no tarfile extraction filters'):
        download.safe_extract(archive, tmp_path / 'out')
    assert not (tmp_path / 'out' / 'f.txt').exists()
