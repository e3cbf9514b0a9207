"""The kit's messages: the library logs to ``logging.getLogger('npe.<module>')``; the commands show them.

A library leaves its output to the program that uses it: the ``npe`` logger has only a
``NullHandler`` (set up by ``npe/__init__.py``), so a notebook or another program sees the kit's
progress messages only if it configures :mod:`logging` (``logging.basicConfig(level='INFO')``), and
pytest's ``caplog`` captures them. The ``npe-*`` commands run inside :func:`showing_messages`: INFO lines on
stdout and WARNING or worse on stderr, the message alone, as the commands have always printed them.

MMEngine's own log (its ``MMLogger``, which neither propagates to ``npe`` nor to the root logger) keeps
its own handlers; :class:`RunnerLog` adds a run's log file to them and can take its console away.

A training launched in torchrun processes (``npe-repro --gpus N``) has its output in the run's log;
its progress records are handed to the driver instead: rank 0 writes them to a file
(:func:`recording_for_relay`) and the driver logs them again as they come (:func:`relaying`), so its
console shows the same progress as a training in its own process.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
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


# ----------------------------------------------------------------------------- relay between processes
#: The loggers a launched training hands to the driver: the progress lines and the resume line
#: (:class:`npe.hooks.NPEProgressHook`).
RELAYED = ('npe.progress', 'npe.hooks')
#: Extras of a record that travel with it (the live line reads ``npe_progress``; ``tag``: a note).
_EXTRAS = ('npe_progress', 'tag')


class _RecordFile(logging.Handler):
    """Each record as one JSON line (logger, level, message, extras), flushed at once: another
    process follows the file while this one runs."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.DEBUG)
        self.stream = open(path, 'a', encoding='utf-8')

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = dict(name=record.name, levelno=record.levelno, msg=record.getMessage(),
                        **{k: getattr(record, k) for k in _EXTRAS if getattr(record, k, None) is not None})
            self.stream.write(json.dumps(data, default=str) + '\n')
            self.stream.flush()
        except Exception:  # logging's contract: a broken stream is reported, never raised
            self.handleError(record)

    def close(self) -> None:
        self.stream.close()
        super().close()


@contextlib.contextmanager
def recording_for_relay(path: Path | None, loggers: tuple[str, ...] = RELAYED) -> Iterator[None]:
    """In a launched process (rank 0): inside the block the records of ``loggers``, live (DEBUG)
    progress included, go to ``path`` for the driver's :func:`relaying`, not to this process's own
    output (the driver shows them). ``path`` None: nothing changes."""
    if path is None:
        yield
        return
    handler = _RecordFile(Path(path))
    saved = []
    for name in loggers:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)   # the driver's handlers decide what is shown, as in-process
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        handler.close()


@contextlib.contextmanager
def relaying(path: Path, every: float = 0.2) -> Iterator[None]:
    """Inside the block, the records another process writes to ``path`` (:func:`recording_for_relay`)
    are logged here again, on their own loggers at their own levels, as they come (a thread reads
    the file every ``every`` seconds; the rest is read when the block ends). A stale file is removed
    first."""
    path = Path(path)
    path.unlink(missing_ok=True)
    stop = threading.Event()
    state = dict(offset=0, partial=b'')

    def drain() -> None:
        try:
            with open(path, 'rb') as stream:
                stream.seek(state['offset'])
                chunk = stream.read()
        except FileNotFoundError:   # the process has not written yet
            return
        state['offset'] += len(chunk)
        *lines, state['partial'] = (state['partial'] + chunk).split(b'\n')   # a half-written line waits
        for line in lines:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            extra = {k: data[k] for k in _EXTRAS if k in data}
            logging.getLogger(data['name']).log(data['levelno'], '%s', data['msg'], extra=extra)

    def follow() -> None:
        while not stop.wait(every):
            drain()

    thread = threading.Thread(target=follow, name='npe-relay', daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        drain()
