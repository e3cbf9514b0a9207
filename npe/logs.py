"""The kit's messages: the library logs to ``logging.getLogger('npe.<module>')``; the commands show them.

A library leaves its output to the program that uses it: the ``npe`` logger has only a
``NullHandler`` (set up by ``npe/__init__.py``), so a notebook or another program sees the kit's
progress messages only if it configures :mod:`logging` (``logging.basicConfig(level='INFO')``), and
pytest's ``caplog`` captures them. The ``npe-*`` commands run inside :func:`showing_messages`: INFO lines on
stdout and WARNING or worse on stderr, the message alone, as the commands have always printed them.

MMEngine's own log (its ``MMLogger``, which neither propagates to ``npe`` nor to the root logger) is
not routed here: it goes to its console handler and to the run's log files as before.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

#: The logger every module's logger hangs under (``npe.run``, ``npe.launch``, ...).
ROOT = 'npe'


class _Console(logging.Handler):
    """stdout below WARNING, stderr from WARNING on; each stream looked up when a message comes, so
    what replaces ``sys.stdout`` at that moment (pytest's capture, a run's log file) receives it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + '\n')
            stream.flush()   # progress lines appear when they happen, also under a pipe
        except Exception:  # logging's own contract: a broken stream is reported, never raised
            self.handleError(record)


@contextlib.contextmanager
def showing_messages(level: int = logging.INFO) -> Iterator[None]:
    """Inside the block, the kit's messages at ``level`` and above are shown on the console: what
    each command does around its work (:func:`npe.errors.cli_entry`). Afterwards the ``npe`` logger
    is as before, so a command called in-process (tests, notebooks) leaves no handler behind."""
    logger = logging.getLogger(ROOT)
    handler = _Console()
    handler.setFormatter(logging.Formatter('%(message)s'))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
