"""The one exception type a user should ever see from the kit."""
from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., int | None])


class UserError(Exception):
    """Bad input or an unmet precondition: one line saying what, where, and how to fix it."""


def cli_entry(func: F) -> F:
    """Wrap a CLI ``main``: a :class:`UserError` becomes ``error: <msg>`` on stderr and exit status 2;
    Ctrl-C one line and status 130 (finished work is kept; the same command resumes)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted; finished runs are kept, run the same command again to go on",
                  file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]
