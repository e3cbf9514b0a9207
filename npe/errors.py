"""The exceptions a user should ever see from the kit, and how a command turns them into one line.

Every error a user can fix is a :class:`UserError` (one line: what, where, how to fix). Its
subclasses say which part failed, so library callers can catch narrowly::

    try:
        npe.train("my_cfg.py", num_pem=2)
    except npe.errors.DataError as exc:   # e.g. the data folder is missing
        ...
"""
from __future__ import annotations

import errno
import functools
import os
import re
import signal
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., int | None])


#: Marks an argument's name inside a message (:func:`arg`); never seen by a user.
_ARG = re.compile("\x00([A-Za-z_][A-Za-z0-9_]*)\x00")


def arg(name: str) -> str:
    """An argument named in a :class:`UserError` message: a library caller reads ``name`` (the
    function's own argument), a command's user the flag ``--name-with-dashes`` (:func:`cli_entry`),
    so one message serves both without CLI wording in the library."""
    return f"\x00{name}\x00"


class UserError(Exception):
    """Bad input or an unmet precondition: one line saying what, where, and how to fix it.

    A message may name arguments with :func:`arg`: ``str(exc)`` shows the argument names,
    :attr:`command_message` the commands' flags.
    """

    def __init__(self, *args: object) -> None:
        message = args[0] if args and isinstance(args[0], str) else None
        #: the message as a command shows it: each :func:`arg` as its ``--flag``
        self.command_message = None if message is None else \
            _ARG.sub(lambda m: "--" + m.group(1).replace("_", "-"), message)
        if message is not None:
            args = (_ARG.sub(lambda m: m.group(1), message),) + args[1:]
        super().__init__(*args)


class ConfigError(UserError):
    """A config cannot be found, loaded, or made into an NPE training / test config."""


class DataError(UserError):
    """A dataset, archive, download or data folder is missing, corrupt or unsafe."""


class RecipeError(UserError):
    """A recipe file breaks the schema (the message names the file and the key)."""


class RunError(UserError):
    """A training run's work dir, config or checkpoint cannot be used (evaluation, resuming)."""


class ResultFileError(UserError):
    """A result file is unreadable or breaks the result-file contract."""


#: errno values of a full disk or an exhausted quota: the user's to fix, so one line, not a traceback.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def no_space_message(exc: OSError) -> str:
    """The one line of a full disk: which file, what to do, what is kept."""
    where = f' writing {exc.filename}' if exc.filename else ''
    return (f'no space left on the device{where} ({os.strerror(exc.errno)}); free space or give '
            'another folder, then run the same command again: finished runs are kept, no half-written '
            'file is')


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and ``kill`` send), raised like Ctrl-C so the same clean-up runs."""


def _on_sigterm(signum, frame):
    raise Terminated()


def cli_entry(func: F) -> F:
    """Wrap a CLI ``main``: a :class:`UserError` becomes ``error: <msg>`` on stderr and exit status 2;
    Ctrl-C or SIGTERM one line and status 130 / 143 (finished work is kept; the same command
    resumes); a closed output pipe ends quietly."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        previous = None
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                previous = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread: leave signals alone
            pass
        try:
            from npe.logs import showing_messages

            with showing_messages():   # the library's messages (logging) on the console
                return func(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc.command_message or exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt as exc:
            what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            print(f"{what}; finished runs are kept, run the same command again to go on",
                  file=sys.stderr)
            raise SystemExit(143 if isinstance(exc, Terminated) else 130) from None
        except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(141) from None
        except OSError as exc:  # after BrokenPipeError, one of its kind
            if exc.errno not in NO_SPACE:
                raise
            print(f"error: {no_space_message(exc)}", file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            if previous is not None:  # a main() called in-process leaves the caller's handler as it was
                signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]
