"""The six NPE model options, their defaults and their validation, each defined once.

``num_pem``, ``pem_type``, ``scale_factor``, ``freeze_backbone``, ``freeze_decode`` and ``protocol``
cross every layer: the ``npe-train`` flags, :func:`npe.apply_npe`, :func:`npe.train`, the
``MultiHeadWrapper``, the recipe schema, the resume check, the tables' method labels. Each of them
takes its defaults from :data:`DEFAULTS` and checks a value with the :class:`Rule` named here, so a new
option is one field of :class:`NPEOptions` (and its :data:`RULES` entry) plus its use.

The scale factor s has three rules, by where it is read (all three defined here, each once):
:data:`TRAINED_SCALE` (the s stored in a training config: finite, > 0), :data:`EVALUATED_SCALE`
(what an evaluation or the wrapper accepts: > 0, ``inf`` = no adjustment) and :data:`RECIPE_SCALE`
(a recipe's ``scale_factors`` item: the trained rule, or ``'auto'``).

A value that breaks a rule is an :class:`OptionError` (a :class:`~npe.errors.ConfigError`), e.g.
``num_pem must be an integer >= 0, got -1``; the API boundary (:mod:`npe.arguments`) and the recipe
schema word the same rule in their own format from :attr:`Rule.expected`.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

from npe.constants import AUTO, PEM_TYPES, PROTOCOLS
from npe.errors import ConfigError


class OptionError(ConfigError):
    """An NPE option has a value its rule refuses (``option`` names it, ``expected`` says what it takes)."""

    def __init__(self, message: str, option: str, expected: str) -> None:
        super().__init__(message)
        self.option = option
        self.expected = expected


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class Rule:
    """What one option takes: ``typed`` (the Python type test, for the API boundary) and ``valid``
    (the whole rule, type included), ``expected`` in words, ``label`` = how messages name it (empty:
    by the option's name)."""

    label: str
    expected: str
    typed: Callable[[Any], bool]
    test: Callable[[Any], bool] = lambda value: True
    choices: tuple[str, ...] = ()

    def valid(self, value: Any) -> bool:
        """Whether ``value`` passes the rule (type and value)."""
        return self.typed(value) and bool(self.test(value))

    def check(self, value: Any, option: str | None = None) -> Any:
        """``value`` unchanged, or :class:`OptionError` ``<label> must be <expected>, got <value>``."""
        if not self.valid(value):
            raise OptionError(f'{self.label or option} must be {self.expected}, got {value!r}',
                              option or self.label, self.expected)
        return value


def _choice(label: str, what: str, choices: tuple[str, ...]) -> Rule:
    return Rule(label, f"one of the {what} {', '.join(choices)}",
                lambda v: isinstance(v, str), lambda v: v in choices, choices)


NUM_PEM = Rule('num_pem', 'an integer >= 0', _integer, lambda v: v >= 0)
PEM_TYPE = _choice('pem_type', 'pem types', PEM_TYPES)
PROTOCOL = _choice('protocol', 'protocols', PROTOCOLS)
FLAG = Rule('', 'True or False', lambda v: isinstance(v, bool))
#: s stored in a training config (``npe-train --scale-factor``, ``apply_npe``): finite and > 0.
TRAINED_SCALE = Rule('scale factor', 'a finite number > 0', _real, lambda v: math.isfinite(v) and v > 0)
#: s of an evaluation (``npe-test --scale-factor``, ``evaluate``) and of the wrapper: > 0, inf allowed.
EVALUATED_SCALE = Rule('scale factor', 'a number > 0 (inf = no adjustment)', _real, lambda v: v > 0)
#: An item of a recipe's ``scale_factors``: :data:`TRAINED_SCALE`, or ``'auto'`` (chosen on held-out data).
RECIPE_SCALE = Rule('scale factor', f"a finite number > 0 or {AUTO!r}",
                    lambda v: v == AUTO if isinstance(v, str) else TRAINED_SCALE.typed(v),
                    lambda v: v == AUTO or TRAINED_SCALE.test(v))

#: Why a configuration is refused as a whole (the one rule between options).
NOTHING_TO_TRAIN = ('num_pem 0 with both freeze_backbone and freeze_decode leaves nothing to train; '
                    'unfreeze one part or train PEMs (num_pem >= 1)')


def _option(default: Any, rule: Rule, *, trains: bool = True) -> Any:
    # ``trains``: whether the option changes what is trained (the resume check, recipes' train keys)
    return field(default=default, metadata={'rule': rule, 'trains': trains})


@dataclass(frozen=True)
class NPEOptions:
    """One validated set of NPE options; ``NPEOptions()`` holds the defaults (:data:`DEFAULTS`).

    Construction checks every field with its rule and the rule between them (0 PEMs with both parts
    frozen trains nothing): :class:`OptionError`. ``num_pem`` is stored as ``int``, s as ``float``.
    """

    num_pem: int = _option(1, NUM_PEM)
    pem_type: str = _option('auto', PEM_TYPE)
    scale_factor: float = _option(1.0, TRAINED_SCALE, trains=False)
    freeze_backbone: bool = _option(False, FLAG)
    freeze_decode: bool = _option(False, FLAG)
    protocol: str = _option('upstream', PROTOCOL)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            f.metadata['rule'].check(getattr(self, f.name), f.name)
        object.__setattr__(self, 'num_pem', int(self.num_pem))
        object.__setattr__(self, 'scale_factor', float(self.scale_factor))
        check_trainable(self.num_pem, self.freeze_backbone, self.freeze_decode)

    def as_dict(self) -> dict[str, Any]:
        """The options as a plain dict, in field order."""
        return dataclasses.asdict(self)

    def training_dict(self) -> dict[str, Any]:
        """The options that change what is trained (all but s, which only acts at inference)."""
        return {name: getattr(self, name) for name in TRAINING_OPTIONS}


def check_trainable(num_pem: int, freeze_backbone: bool, freeze_decode: bool) -> None:
    """:class:`OptionError` (naming ``num_pem``) when 0 PEMs and both freezes leave nothing to train."""
    if num_pem == 0 and freeze_backbone and freeze_decode:
        raise OptionError(NOTHING_TO_TRAIN, 'num_pem', NUM_PEM.expected)


#: The defaults, as one object: ``DEFAULTS.num_pem`` is the default everywhere.
DEFAULTS = NPEOptions()
#: Option name -> its rule.
RULES: dict[str, Rule] = {f.name: f.metadata['rule'] for f in dataclasses.fields(NPEOptions)}
#: The option names, in order.
NAMES: tuple[str, ...] = tuple(RULES)
#: The options that change what is trained (``--resume`` must keep them; recipes' train keys hash them).
TRAINING_OPTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(NPEOptions) if f.metadata['trains'])
