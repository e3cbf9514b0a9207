"""How the commands show a training's progress (the ``npe.progress`` records of
:class:`npe.hooks.NPEProgressHook`): one line redrawn in place (``\\r``) when stdout is a terminal,
else the plain INFO lines, one every ~10% of the run or minute, as any other message (a log, CI)."""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator, TextIO

#: The logger the training hook writes progress to (npe.hooks.progress_log; not imported here: that
#: module loads MMSeg).
PROGRESS_LOGGER = 'npe.progress'


class _LiveLine(logging.Handler):
    """Every progress record redraws one terminal line; the run's last iteration ends it."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.width = 0   # of the line drawn, to blank what a shorter one leaves

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage().strip()
            self.stream.write('\r  ' + text.ljust(self.width))
            self.width = len(text)
            if (getattr(record, 'npe_progress', None) or {}).get('final'):
                self.end()
            self.stream.flush()
        except Exception:  # logging's contract: a broken stream is reported, never raised
            self.handleError(record)

    def end(self) -> None:
        """Finish an open line (the run ended, or was interrupted) so the next message starts clean."""
        if self.width:
            self.stream.write('\n')
            self.stream.flush()
            self.width = 0


@contextlib.contextmanager
def showing_progress(stream: TextIO | None = None, live: bool = True) -> Iterator[None]:
    """Inside the block, progress is one updating line when ``live`` and ``stream`` (default
    ``sys.stdout``) is a terminal; otherwise nothing changes (the plain lines come through the
    command's messages, :func:`npe.logs.showing_messages`)."""
    stream = stream or sys.stdout
    if not (live and hasattr(stream, 'isatty') and stream.isatty()):
        yield
        return
    logger = logging.getLogger(PROGRESS_LOGGER)
    handler = _LiveLine(stream)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False   # the plain lines are drawn in place too, not printed again
    try:
        yield
    finally:
        handler.end()
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
