"""Pieces the ``npe-*`` commands share: one-line argument errors and ``--cfg-options`` parsing."""
from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from npe.errors import UserError

LAUNCHERS = ('none', 'pytorch', 'slurm')


def quiet_library_warnings() -> None:
    """Silence warnings the stack prints on stderr for every user (not actionable by them), so an
    error stays one line: MMEngine imports the deprecated ``pkg_resources`` for ``mmseg::`` configs."""
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is a :class:`UserError`: one ``error:`` line and exit status 2
    (through :func:`npe.errors.cli_entry`) instead of the usage block plus a message."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f'{message} (see {self.prog} --help)')


class CfgOptionsAction(argparse.Action):
    """``KEY=VALUE ...`` into a dict, with MMEngine's value parsing (lists, tuples, numbers, bools).

    Wraps :class:`mmengine.config.DictAction`, whose malformed-input errors are bare tracebacks.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction

        options: dict[str, Any] = dict(getattr(namespace, self.dest, None) or {})
        for item in values:
            key, sep, value = item.partition('=')
            if not sep or not key:
                raise argparse.ArgumentError(self, f'expects KEY=VALUE pairs, got {item!r}')
            try:
                value = DictAction._parse_iterable(value)
            except Exception as exc:  # unbalanced brackets and the like
                raise argparse.ArgumentError(self, f'cannot parse the value of {key!r}: {exc}') from None
            options[key] = value
        setattr(namespace, self.dest, options)


def merge_cfg_options(cfg, options: dict | None) -> None:
    """Apply ``--cfg-options`` to ``cfg`` in place; a malformed key path is a :class:`UserError`."""
    if not options:
        return
    try:
        cfg.merge_from_dict(dict(options))
    except Exception as exc:  # e.g. indexing into a value that is not a list
        raise UserError(f'--cfg-options cannot be applied: {type(exc).__name__}: {exc}') from None


def own_visualizer(cfg) -> None:
    """Give this run's visualizer a name of its own (in place).

    MMEngine keeps one visualizer per name for the whole process: a second Runner with the same name
    would reuse the first one and write its scalars (the loss curve) into the first run's folder.
    """
    import uuid

    if cfg.get('visualizer'):
        base = str(cfg.visualizer.get('name') or 'visualizer').split('#')[0]
        cfg.visualizer['name'] = f'{base}#{uuid.uuid4().hex[:8]}'


def write_json_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
