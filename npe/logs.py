"""The kit's messages: the library logs to ``logging.getLogger('npe.<module>')``; the commands show them.

A library leaves its output to the program that uses it: the ``npe`` logger has only a
``NullHandler`` (set up by ``npe/__init__.py``), so a notebook or another program sees the kit's
progress messages only if it configures :mod:`logging` (``logging.basicConfig(level='INFO')``), and
pytest's ``caplog`` captures them. The ``npe-*`` commands run inside :func:`showing_messages`: INFO lines on
stdout and WARNING or worse on stderr, the message alone, as the commands have always printed them.

MMEngine's own log (its ``MMLogger``, which neither propagates to ``npe`` nor to the root logger) keeps
its own handlers; :class:`RunnerLog` adds a run's log file to them and can take its console away.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

#: The logger every module's logger hangs under (``npe.run``, ``npe.launch``, ...).
ROOT = 'npe'

#: ``extra=`` of a WARNING the commands show as ``note: ...`` rather than ``warning: ...`` (retries,
#: the checkpoint a resume picked): worth seeing on stderr, not a departure from what was asked.
NOTE = {'tag': 'note: '}


class _Tagged(logging.Formatter):
    """The message as the commands have always printed it: ``warning: `` before a WARNING (or the
    record's own ``tag``), nothing before other levels (progress lines, a run's FAILED line)."""

    def format(self, record: logging.LogRecord) -> str:
        default = 'warning: ' if record.levelno == logging.WARNING else ''
        return getattr(record, 'tag', default) + super().format(record)


class _Console(logging.Handler):
    """stdout below WARNING, stderr from WARNING on; each stream looked up when a message comes, so
    what replaces ``sys.stdout`` at that moment (pytest's capture, a program's own) receives it."""

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
    handler.setFormatter(_Tagged('%(message)s'))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


class _Held(logging.Handler):
    """Collects the records of a :func:`held_messages` block."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        #: set by the block's owner: the held messages are dropped, not shown (a quiet job, rank > 0)
        self.drop = False

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def held_messages() -> Iterator[_Held]:
    """The kit's messages inside the block are held back and passed on, in order, only when the block
    ends without an error and its owner did not set ``.drop``: warnings about a config that a later
    check refuses would only bury the one-line error. Blocks nest."""
    logger = logging.getLogger(ROOT)
    held = _Held()
    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers[:] = [held]
    logger.propagate = False
    try:
        yield held
    finally:
        logger.handlers[:] = handlers
        logger.propagate = propagate
    if not held.drop:
        for record in held.records:   # as if logged now: the handlers and propagation of that moment
            logging.getLogger(record.name).handle(record)


class RunnerLog:
    """Where one MMEngine Runner's log goes besides its own ``<work_dir>/<timestamp>/`` file:
    ``log_file`` (appended) and, with ``console=False``, not on the console.

    MMEngine's logger (``MMLogger``) propagates to no other logger and makes its console handler,
    bound to ``sys.stdout``, while the Runner is built; so :meth:`build` builds the Runner with that
    handler changed as it is made (before the Runner's first message), and :meth:`close` undoes it.
    A program's own ``sys.stdout`` is never replaced.
    """

    def __init__(self, log_file: Path | None = None, console: bool = True) -> None:
        self.log_file, self.console = log_file, console
        self.logger: logging.Logger | None = None
        self._file: logging.Handler | None = None
        self._removed: list[logging.Handler] = []

    def build(self, cfg: Any) -> Any:
        """``Runner.from_cfg(cfg)``, its logger set up as asked."""
        from mmengine.runner import Runner

        owner = self

        class _Runner(Runner):
            def build_logger(self, *args: Any, **kwargs: Any) -> Any:
                return owner._attach(super().build_logger(*args, **kwargs))

        return _Runner.from_cfg(cfg)

    def _attach(self, logger: logging.Logger) -> logging.Logger:
        from mmengine.logging.logger import MMFormatter

        self.logger = logger
        if self.log_file is not None:
            Path(self.log_file).parent.mkdir(parents=True, exist_ok=True)
            self._file = logging.FileHandler(self.log_file, 'a')
            self._file.setFormatter(MMFormatter(color=False, datefmt='%Y/%m/%d %H:%M:%S'))
            logger.addHandler(self._file)
        if not self.console:
            # the console handler is the plain StreamHandler; a FileHandler is a subclass of it
            self._removed = [h for h in logger.handlers if type(h) is logging.StreamHandler]
            for handler in self._removed:
                logger.removeHandler(handler)
        return logger

    @contextlib.contextmanager
    def python_warnings(self) -> Iterator[None]:
        """Python warnings raised inside the block (MMEngine's, MMSeg's, PyTorch's) go to the
        Runner's log instead of stderr when the console is off; else as usual."""
        if self.console:
            yield
            return
        with warnings.catch_warnings():
            def show(message, category, filename, lineno, file=None, line=None) -> None:
                text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
                # before the Runner's logger exists: the kit's own (shown by the commands)
                (self.logger or logging.getLogger(ROOT)).warning(text)
            warnings.showwarning = show
            yield

    def close(self) -> None:
        """The Runner's logger as MMEngine made it: a later message (MMEngine logs to its latest
        logger) goes to the console, never to a closed file."""
        if self.logger is None:
            return
        for handler in self._removed:
            self.logger.addHandler(handler)
        if self._file is not None:
            self.logger.removeHandler(self._file)
            self._file.close()
        self._removed, self._file = [], None
