"""Neural Prior Estimator (NPE / NPE-LA) for MMSegmentation, and the kit that reproduces the paper.

The Python API (each name loads its module on first use, so ``import npe`` stays cheap):

- :func:`npe.load_config` - load an MMSeg config by file or ``mmseg::``/``npe::`` name (:mod:`npe.config`);
- :func:`npe.apply_npe` - make an MMSeg config an NPE config (:mod:`npe.config`);
- :func:`npe.train` - train a config with prior estimator modules (:mod:`npe.training`);
- :func:`npe.evaluate` - evaluate a training run at scale factors s (:mod:`npe.evaluation`);
- :func:`npe.run_recipe` - run a recipe end to end: data, trainings, evaluations, result files
  (:mod:`npe.run`), with :class:`npe.DriverOptions` (``npe-repro``'s flags as one object); it
  returns a :class:`npe.RunOutcome` (the result records and the failures);
- :func:`npe.init_model`, :func:`npe.inference` - a trained model's predictions on images with NPE-LA
  at a chosen s (:mod:`npe.infer`);
- :func:`npe.load_results` - result files as plain records (:mod:`npe.results`);
- :func:`npe.load_recipe`, :func:`npe.register`.

The calls print nothing: their messages are ``logging`` records of the ``npe`` logger, and MMEngine's
log goes to the run's log files unless ``verbose=True``. Errors a user can fix raise subclasses of :class:`npe.errors.UserError` (``ConfigError``,
``DataError``, ``RecipeError``, ``RunError``, ``ResultFileError``).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from npe import errors
from npe.constants import __version__

# A library prints nothing of its own accord: the kit's messages (npe.logs) reach whoever configures
# logging; the npe-* commands show them on the console.
logging.getLogger("npe").addHandler(logging.NullHandler())

__all__ = ["errors", "load_config", "apply_npe", "register", "train", "evaluate", "run_recipe", "RunOutcome",
           "DriverOptions", "load_results", "load_recipe", "init_model", "inference", "__version__"]

if TYPE_CHECKING:  # what the lazy names below are, for type checkers and editors
    from npe.config import apply_npe, load_config, register
    from npe.infer import inference, init_model
    from npe.evaluation import evaluate
    from npe.recipes import load_recipe
    from npe.results import load_results
    from npe.driver_options import DriverOptions
    from npe.run import RunOutcome, run_recipe
    from npe.training import train


#: The lazy API: public name -> the module that defines it (one place to add a name). Importing a
#: submodule never rebinds one of these names: none is a submodule's name except ``npe.train``,
#: whose file puts the function itself in ``sys.modules`` (tests/test_api.py checks both).
API: dict[str, str] = {
    "load_config": "npe.config",
    "apply_npe": "npe.config",
    "register": "npe.config",
    "train": "npe.training",
    "evaluate": "npe.evaluation",
    "run_recipe": "npe.run",
    "RunOutcome": "npe.run",
    "init_model": "npe.infer",
    "inference": "npe.infer",
    "DriverOptions": "npe.driver_options",
    "load_results": "npe.results",
    "load_recipe": "npe.recipes",
}


def __getattr__(name: str) -> Any:
    """Load an API function from its module on first use (and keep it here)."""
    if name not in API:
        raise AttributeError(f"module 'npe' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
