"""Pieces the ``npe-*`` commands share: one-line argument errors and ``--cfg-options`` parsing."""
from __future__ import annotations

import argparse
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


def own_runner_instances(cfg) -> None:
    """Give this run's visualizer and experiment (logger, scope) names of their own (in place).

    MMEngine keeps one instance per name for the whole process. Visualizers share one fixed name, so
    a second Runner would write its scalars (the loss curve) into the first run's folder; loggers are
    named by the second the Runner started, so two Runners started within a second share one log.
    """
    import time
    import uuid

    tag = uuid.uuid4().hex[:8]
    if cfg.get('visualizer'):
        base = str(cfg.visualizer.get('name') or 'visualizer').split('#')[0]
        cfg.visualizer['name'] = f'{base}#{tag}'
    stem = Path(cfg.filename).stem if cfg.filename else 'npe'
    cfg.experiment_name = f'{stem}_{time.strftime("%Y%m%d_%H%M%S")}_{tag}'
