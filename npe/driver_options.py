"""The options of one ``npe-repro`` run (``npe.run_recipe``): one frozen object from the command line
(or the Python keywords) to the driver, and back to a command line for the tasks of a Slurm job array.

Each field names its ``npe-repro`` flag once (:data:`FLAGS`); :meth:`DriverOptions.to_argv` writes the
flags of the fields that differ from their defaults, and ``npe-repro``'s own parser reads them back
(:meth:`DriverOptions.from_namespace`), so a Slurm task runs with exactly the options the driver got.
The recipe itself, ``--list`` and ``--compare`` are the command's business, not the driver's.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from npe.arguments import check_run_arguments

__all__ = ['DriverOptions', 'FLAGS']


def _flag(name: str) -> Any:
    """A field with its command-line flag (``--no-tables`` for ``tables``: a flag that turns it off)."""
    return {'metadata': {'flag': name}}


@dataclass(frozen=True)
class DriverOptions:
    """How ``npe-repro`` runs a recipe; each field is the keyword of ``npe.run_recipe`` of that name.

    - ``variants``, ``seeds``: only these (default: all of the recipe's).
    - ``data_root``, ``results_dir``, ``work_dir``: default ``$NPE_DATA_ROOT`` / ``$NPE_RESULTS_DIR``
      / ``$NPE_WORK_DIR``, else ``segmentation/data``, ``results``, ``work_dirs`` of the checkout.
    - ``mirror``, ``offline``: where data and checkpoints come from (see ``npe-data``).
    - ``dry_run``: only print the plan (runs, iterations, data to fetch, cost); nothing is written.
    - ``tables``: rebuild the recipe's tables and figures at the end (and print the Markdown table).
    - ``verbose``: MMEngine's log on the console instead of each work dir's ``npe-repro.log``.
    - ``gpus``: 0 = train in this process; N >= 1 = each training through torchrun on N processes
      (MMEngine's ``pytorch`` launcher, DDP), the total batch split over them unless
      ``batch_per_process`` is given. ``amp``, ``amp_dtype``: mixed precision (CUDA only).
    - ``task``: run only training number ``task`` of the plan (what one Slurm array task does).
    - ``per_s``: evaluate one s at a time (the old way, for checking) instead of one pass per split.
    - ``slurm``: submit instead of running: one ``sbatch`` job array (a task per training) with these
      extra sbatch options, and the tables as a job after it.

    Sequences are kept as tuples and folders as strings (None = the default folder, resolved when
    the run starts), so two equal sets of flags give equal objects.
    """

    variants: tuple[str, ...] | None = field(default=None, **_flag('--variants'))
    seeds: tuple[int, ...] | None = field(default=None, **_flag('--seeds'))
    data_root: str | None = field(default=None, **_flag('--data-root'))
    results_dir: str | None = field(default=None, **_flag('--results-dir'))
    work_dir: str | None = field(default=None, **_flag('--work-dir'))
    mirror: str | None = field(default=None, **_flag('--mirror'))
    offline: bool = field(default=False, **_flag('--offline'))
    dry_run: bool = field(default=False, **_flag('--dry-run'))
    tables: bool = field(default=True, **_flag('--no-tables'))
    verbose: bool = field(default=False, **_flag('--verbose'))
    gpus: int = field(default=0, **_flag('--gpus'))
    batch_per_process: int | None = field(default=None, **_flag('--batch-per-process'))
    amp: bool = field(default=False, **_flag('--amp'))
    amp_dtype: str = field(default='auto', **_flag('--amp-dtype'))
    task: int | None = field(default=None, **_flag('--task'))
    per_s: bool = field(default=False, **_flag('--per-s'))
    # Last: everything after --slurm goes to sbatch (argparse.REMAINDER).
    slurm: tuple[str, ...] | None = field(default=None, **_flag('--slurm'))

    def __post_init__(self) -> None:
        # The API boundary's checks (one-line UserErrors naming the argument), then the normal form.
        check_run_arguments({f.name: getattr(self, f.name) for f in fields(self)})
        for name in ('variants', 'seeds', 'slurm'):
            value = getattr(self, name)
            if value is not None:
                # No variants or seeds means all of the recipe's (as None); no sbatch options stays ().
                object.__setattr__(self, name, tuple(value) if value or name == 'slurm' else None)
        for name in ('data_root', 'results_dir', 'work_dir'):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, os.fspath(value))

    @classmethod
    def from_keywords(cls, options: 'DriverOptions | None', keywords: Mapping[str, Any]) -> 'DriverOptions':
        """``options`` (default: all defaults) with ``npe.run_recipe``'s keyword arguments on top; an
        unknown keyword, or ``options`` of another type, is a one-line :class:`ConfigError`."""
        from npe.arguments import Checker
        from npe.errors import ConfigError

        check = Checker('npe.run_recipe', ConfigError)
        if options is not None and not isinstance(options, cls):
            raise check.fail('options', 'an npe.driver_options.DriverOptions or None', options)
        check.keywords('keyword', keywords, [f.name for f in fields(cls)])
        return dataclasses.replace(options or cls(), **keywords)

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> 'DriverOptions':
        """From ``npe-repro``'s parsed command line (:func:`npe.cli.repro.build_parser`)."""
        given = {f.name: getattr(args, f.name) for f in fields(cls) if f.name != 'tables'}
        return cls(tables=not args.no_tables, **given)

    @property
    def launch_options(self) -> dict[str, Any]:
        """The keywords of :func:`npe.training.build_train_config` that come from the driver."""
        return dict(batch_per_process=self.batch_per_process, amp=self.amp, amp_dtype=self.amp_dtype)

    def replace(self, **changes: Any) -> 'DriverOptions':
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_argv(self) -> list[str]:
        """The ``npe-repro`` flags that give these options (defaults left out; ``--slurm`` last)."""
        argv: list[str] = []
        for f in fields(self):
            value, flag = getattr(self, f.name), f.metadata['flag']
            if value == f.default:
                continue
            if isinstance(value, bool):
                argv.append(flag)   # a switch (--no-tables: its field is False when given)
            elif isinstance(value, tuple):
                argv += [flag, *map(str, value)]
            else:
                argv += [flag, str(value)]
        return argv


#: Field name -> ``npe-repro`` flag.
FLAGS: dict[str, str] = {f.name: f.metadata['flag'] for f in fields(DriverOptions)}
