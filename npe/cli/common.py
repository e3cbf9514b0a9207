"""Pieces the ``npe-*`` commands share: the one argument parser, ``--cfg-options`` parsing, quiet
library warnings. Everything else the commands do lives in the library (``npe.training``, ...)."""
from __future__ import annotations

import argparse
import warnings
from typing import Any

from npe.errors import UserError


def quiet_library_warnings() -> None:
    """Silence warnings the stack prints on stderr for every user (not actionable by them), so an
    error stays one line: MMEngine imports the deprecated ``pkg_resources`` for ``mmseg::`` configs."""
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a :class:`UserError`: one ``error:`` line and exit status 2
    (through :func:`npe.errors.cli_entry`) instead of the usage block plus a message. Subcommand
    parsers (``add_subparsers``) are of this class too."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f'{message} (see {self.prog} --help)')


def make_parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of a command: the only place the kit builds one (so every command keeps
    the one-line error contract)."""
    return _Parser(prog=prog, description=description, epilog=epilog, formatter_class=_WholeWords)


class _WholeWords(argparse.HelpFormatter):
    """Help text wrapped between words only: a config name or path is never cut in two."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(' '.join(text.split()), width, break_long_words=False, break_on_hyphens=False)


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


def add_cfg_options(parser: argparse.ArgumentParser, help: str) -> None:
    """The ``--cfg-options KEY=VALUE ...`` flag of ``npe-train`` and ``npe-test``."""
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, metavar='KEY=VALUE',
                        help=help)


#: What ``--help`` says about the batch under several processes (npe-train, npe-repro).
BATCH_HELP = ('keep B images per process (total = B x processes) instead of splitting the total batch '
              "(the paper's 16, or the config's train_dataloader.batch_size) over the processes")


def add_batch_per_process(parser: argparse.ArgumentParser) -> None:
    """``--batch-per-process B``."""
    parser.add_argument('--batch-per-process', type=int, metavar='B', help=BATCH_HELP)


def add_launcher(parser: argparse.ArgumentParser, batch_help: bool = False) -> None:
    """``--launcher`` and the ``--local_rank`` torch.distributed passes (hidden); with
    ``batch_help``, ``--batch-per-process`` too."""
    from npe.constants import LAUNCHERS

    # the command's own name in the example; the batch split only where --batch-per-process exists
    command = parser.prog or 'npe-train'
    split = (' Several processes split the total batch evenly (16 over 2 processes = 8 each) unless '
             '--batch-per-process is given' if batch_help else ' Several processes split the data.')
    parser.add_argument('--launcher', default='none', choices=LAUNCHERS,
                        help=f'none = one process; pytorch = under torchrun (e.g. torchrun '
                             f'--nproc-per-node 2 $(command -v {command}) ... --launcher pytorch); '
                             f'slurm = under srun.{split}')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    if batch_help:
        add_batch_per_process(parser)
