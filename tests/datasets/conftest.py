"""Fixtures for dataset tests (helpers live in datasets_helpers.py)."""
from __future__ import annotations

import socket

import pytest

from datasets_helpers import Server


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def dead_base():
    """Base URL of a port on 127.0.0.1 where nothing listens (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def _download_env(monkeypatch):
    # Short back-offs, no proxy for 127.0.0.1, no mirror or data root leaking in from the caller.
    monkeypatch.setenv("NPE_DOWNLOAD_RETRIES", "3")
    monkeypatch.setenv("NPE_DOWNLOAD_BACKOFF", "0.01")
    monkeypatch.setenv("NPE_DOWNLOAD_TIMEOUT", "10")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for var in ("NPE_MIRROR", "NPE_DATA_ROOT", "NPE_ADE20K_EXPECTED_COUNTS", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
