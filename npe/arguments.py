"""The Python API's arguments checked where they come in (``npe.apply_npe``, ``npe.train``,
``npe.evaluate``, ``npe.run_recipe``, ``npe.load_results``, ``npe.load_recipe``).

A wrong type or value is one :class:`~npe.errors.UserError` subclass naming the function, the
argument (by its Python name, not a command-line flag), what it got and what it takes, before any
work starts: never a ``TypeError`` from deep inside MMEngine, nor a string taken apart letter by
letter as a list of names.
"""
from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from typing import Any, Iterable, Sequence

from npe.constants import AUTO, LAUNCHERS
from npe.errors import ConfigError, RunError, UserError
from npe.options import EVALUATED_SCALE


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _got(value: Any) -> str:
    kind = type(value).__name__
    if isinstance(value, str):
        return f'the string {_shown(value)}'
    if value is None:
        return 'None'
    return f'{kind} {_shown(value)}'


class Checker:
    """Checks of one public function's arguments: ``Checker('npe.train', ConfigError)``."""

    def __init__(self, function: str, error: type[UserError]) -> None:
        self.function = function
        self.error = error

    def fail(self, name: str, expected: str, value: Any, fix: str = '') -> UserError:
        return self.error(f'{self.function}: {name}: expected {expected}, got {_got(value)}'
                          + (f'; {fix}' if fix else ''))

    def flag(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(name, 'True or False', value)
        return value

    def integer(self, name: str, value: Any, minimum: int | None = None, maximum: int | None = None,
                optional: bool = False) -> int | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = (f' from {minimum} to {maximum}' if maximum is not None
                      else f' >= {minimum}' if minimum is not None else '')
            raise self.fail(name, f'an integer{bounds}' + (' or None' if optional else ''), value)
        return int(value)

    def real(self, name: str, value: Any, expected: str, kind: type = numbers.Real,
             optional: bool = False) -> None:
        """Only the type: a number (``kind``, never a bool); its range is checked by the caller."""
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, kind):
            raise self.fail(name, expected, value)

    def choice(self, name: str, value: Any, choices: Iterable[str]) -> str:
        choices = tuple(choices)
        if not isinstance(value, str) or value not in choices:
            raise self.fail(name, 'one of ' + ', '.join(repr(c) for c in choices), value)
        return value

    def text(self, name: str, value: Any, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, 'a non-empty string' + (' or None' if optional else ''), value)
        return value

    def path(self, name: str, value: Any, optional: bool = False) -> str | os.PathLike | None:
        """A file or folder name: a non-empty ``str`` or ``os.PathLike`` (None when ``optional``)."""
        if value is None and optional:
            return None
        if isinstance(value, os.PathLike):
            value_text = os.fspath(value)
        else:
            value_text = value
        if not isinstance(value_text, str) or not value_text.strip() or '\0' in value_text:
            raise self.fail(name, 'a path (str or pathlib.Path)' + (' or None' if optional else ''), value)
        return value

    def sequence(self, name: str, value: Any, item: str, optional: bool = False,
                 example: str = '') -> list | None:
        """A list/tuple (not a string, not a mapping); a single item is refused with the fix."""
        if value is None and optional:
            return None
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            fix = f'write {name}={example}' if example else ''
            raise self.fail(name, f'a list of {item}' + (' or None' if optional else ''), value, fix)
        return list(value)

    def names(self, name: str, value: Any, item: str, optional: bool = True, example: str = '') -> list[str] | None:
        items = self.sequence(name, value, item, optional=optional, example=example)
        if items is None:
            return None
        for x in items:
            if not isinstance(x, str) or not x:
                raise self.fail(f'{name} item', f'a {item[:-1] if item.endswith("s") else item}', x)
        return items

    def options(self, name: str, value: Any) -> dict | None:
        """``cfg_options``: None or a mapping of dotted config keys (strings) to values."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(name, "a dict of config keys to values, e.g. {'train_cfg.max_iters': 100}", value)
        for key in value:
            if not isinstance(key, str) or not key:
                raise self.fail(f'{name} key', 'a non-empty string (a dotted config key)', key)
        return dict(value)

    def keywords(self, name: str, given: Mapping[str, Any], known: Iterable[str]) -> None:
        """``**options``: only ``known`` names."""
        unknown = sorted(set(given) - set(known))
        if unknown:
            import difflib

            near = difflib.get_close_matches(unknown[0], list(known), n=1)
            hint = f' (did you mean {near[0]}?)' if near else ''
            raise self.error(f'{self.function}: unknown argument {unknown[0]!r}{hint}; it takes '
                             + ', '.join(sorted(known)))


def check_npe_options(function: str, *, load_from: Any, **options: Any) -> None:
    """The NPE options of ``apply_npe`` / ``train``: their types, by the rules of :mod:`npe.options`
    (:class:`ConfigError`); the values are checked by :class:`npe.options.NPEOptions` itself, with
    the messages the commands show."""
    from npe.options import RULES

    check = Checker(function, ConfigError)
    for name, value in options.items():
        rule = RULES[name]
        if not rule.typed(value):
            raise check.fail(name, rule.expected, value)
    check.path('load_from', load_from, optional=True)


def check_evaluate_arguments(given: dict) -> None:
    """``npe.evaluate``'s arguments: types and values, before anything is read (:class:`RunError` for
    where the run is, :class:`ConfigError` for the rest)."""
    Checker('npe.evaluate', RunError).path('work_dir', given['work_dir'], optional=True)
    Checker('npe.evaluate', RunError).path('checkpoint', given['checkpoint'], optional=True)
    Checker('npe.evaluate', ConfigError).path('log_file', given['log_file'], optional=True)
    check = Checker('npe.evaluate', ConfigError)
    scales = check.sequence('scale_factors', given['scale_factors'], "numbers > 0 (None = the trained "
                            "s, inf = no adjustment, 'auto' = chosen on the held-out split)",
                            example=f'[{given["scale_factors"]!r}]')
    for s in scales:   # values (> 0) are checked where they are used, with the commands' message
        if s != AUTO:
            check.real('scale_factors item', s, f"{EVALUATED_SCALE.expected}, 'auto' or None", optional=True)
    for name in ('tta', 'record_prior', 'per_s', 'verbose'):
        check.flag(name, given[name])
    if given['quiet'] is not None:
        check.flag('quiet', given['quiet'])
    check.options('cfg_options', given['cfg_options'])
    prior = check.sequence('log_prior', given['log_prior'], 'numbers, one per class', optional=True)
    for value in prior or []:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise check.fail('log_prior item', 'a finite number', value)
    check.text('data_split', given['data_split'], optional=True)
    for name in ('config', 'out_dir', 'data_root'):
        check.path(name, given[name], optional=True)
    check.choice('launcher', given['launcher'], LAUNCHERS)
    pairs = check.sequence('adjustments', given['adjustments'], "(kind, s) pairs, e.g. [('npe', 2.0)]",
                           optional=True)
    for pair in pairs or []:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise check.fail('adjustments item', "a (kind, s) pair, e.g. ('npe', 2.0)", pair)
        if not isinstance(pair[0], str):
            raise check.fail('adjustments kind', "'npe', 'counted' or 'none'", pair[0])
        if pair[1] != AUTO:
            check.real('adjustments s', pair[1], f"{EVALUATED_SCALE.expected}, 'auto' or None", optional=True)
    check.names('keep_predictions', given['keep_predictions'], 'image names', optional=False,
                example="['im0001']")


def check_run_arguments(given: dict) -> None:
    """``npe.run_recipe``'s arguments (the recipe itself aside): :class:`RecipeError` for what picks
    runs of the recipe, :class:`ConfigError` for how they run."""
    from npe.errors import RecipeError

    pick = Checker('npe.run_recipe', RecipeError)
    pick.names('variants', given['variants'], 'variant names', example=f'[{given["variants"]!r}]')
    seeds = pick.sequence('seeds', given['seeds'], 'seeds (integers >= 0)', optional=True,
                          example=f'[{_seed_example(given["seeds"])}]')
    # Only types here: the values (seed range, task in the plan, gpus >= 0, ...) are checked where
    # they are used, with the messages npe-repro shows for its flags.
    for seed in seeds or []:
        pick.real('seeds item', seed, 'an integer from 0 to 4294967295', numbers.Integral)
    pick.real('task', given['task'], 'an integer >= 0 or None', numbers.Integral, optional=True)
    check = Checker('npe.run_recipe', ConfigError)
    for name in ('data_root', 'results_dir', 'work_dir'):
        check.path(name, given[name], optional=True)
    check.text('mirror', given['mirror'], optional=True)
    for name in ('offline', 'dry_run', 'tables', 'verbose', 'amp', 'per_s'):
        check.flag(name, given[name])
    check.real('gpus', given['gpus'], 'an integer >= 0', numbers.Integral)
    check.real('batch_per_process', given['batch_per_process'], 'an integer >= 1 or None', numbers.Integral,
               optional=True)
    check.choice('amp_dtype', given['amp_dtype'], ('auto', 'float16', 'bfloat16'))
    options = check.sequence('slurm', given['slurm'], 'sbatch options (strings)', optional=True,
                             example="['--partition', 'gpu']")
    for item in options or []:
        if not isinstance(item, str):
            raise check.fail('slurm item', 'a string', item)


def check_results_arguments(recipe: Any, results_dir: Any, only_ok: Any) -> None:
    """``npe.load_results``'s arguments (:class:`ResultFileError`)."""
    from npe.errors import ResultFileError

    check = Checker('npe.load_results', ResultFileError)
    check.text('recipe', recipe, optional=True)
    if isinstance(recipe, str) and ('/' in recipe or os.sep in recipe or '\0' in recipe
                                    or recipe.strip() in ('.', '..')):
        raise check.fail('recipe', "a recipe name (the folder <results_dir>/<name>), e.g. 'longtail_synth'",
                         recipe, 'give the folder holding it as results_dir')
    check.path('results_dir', results_dir, optional=True)
    check.flag('only_ok', only_ok)


def _seed_example(value: Any) -> str:
    """``0`` for ``seeds="0"`` (the fix is a list of integers, not of strings), else ``repr``."""
    return value.strip() if isinstance(value, str) and value.strip().isdigit() else repr(value)
