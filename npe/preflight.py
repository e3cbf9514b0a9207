"""What a driver checks before any work starts, so that bad input is one line up front and never a
traceback after hours of training: every folder it will write (:func:`npe.files.check_output_dir`),
and that the result files already in a recipe's folder are that recipe's
(:func:`npe.results.check_recipe_folder`). Leftover temporary files of killed writers are removed.
"""
from __future__ import annotations

import logging
from pathlib import Path

from npe.files import check_output_dir, clean_stale_temps
from npe.recipes import Recipe
from npe.results import TABLES_DIRNAME, check_recipe_folder

log = logging.getLogger(__name__)


def check_run_outputs(recipe: Recipe, results: Path, work_root: Path, data_root: Path,
                      tables: bool = True) -> None:
    """Raise a :class:`~npe.errors.UserError` (one line naming the path and the fix) unless every
    output folder of a recipe run can be created and written to, and no file in its results folder
    belongs to another recipe. Nothing is created."""
    folders = [(results, '--results-dir'), (results / recipe.name, '--results-dir'),
               (work_root, '--work-dir'), (work_root / recipe.name, '--work-dir'),
               (data_root, '--data-root')]
    if tables:
        folders.append((results / TABLES_DIRNAME, '--results-dir'))
    for folder, flag in folders:
        check_output_dir(folder, flag)
    check_recipe_folder(results, recipe)
    clean_stale_temps(results / recipe.name)


def note_driver(recipe_results: Path, work_root: Path) -> Path:
    """:func:`warn_other_drivers`, then :func:`register_driver`: what a driver does before its work."""
    warn_other_drivers(recipe_results, work_root)
    return register_driver(recipe_results, work_root)


def warn_other_drivers(recipe_results: Path, work_root: Path) -> None:
    """Say (one ``warning:`` line) when another driver works on the same recipe results folder with
    another work dir (writes nothing; removes killed drivers' records).

    Drivers that share a work dir share each job's lock and train every run once; with different
    work dirs the locks differ, so both train everything and the second file of a run overwrites
    the first. Each driver leaves ``.driver.<pid>@<host>`` (its work dir as JSON; no ``.json``
    suffix, so no reader of result files takes it for one) in the folder, removed
    when its process ends; a killed driver's file is taken for stale as :func:`clean_stale_temps`
    judges temporary files (process gone on this host)."""
    import json

    from npe.files import _writer_id, writer_gone

    work = str(Path(work_root).resolve())
    for other in sorted(Path(recipe_results).glob('.driver.*')):
        writer = other.name[len('.driver.'):]
        if writer == _writer_id():
            continue
        pid, _, host = writer.partition('@')
        try:
            theirs = json.loads(other.read_text()).get('work_dir')
        except (OSError, ValueError, AttributeError):
            continue
        if writer_gone(writer):
            other.unlink(missing_ok=True)   # a killed driver's record
            continue
        if theirs != work:
            log.warning('another npe-repro (process %s on %s) works on %s with work dir %s, this one '
                        'with %s: both will train every run; give both the same --work-dir (each run is '
                        'then trained once) or another --results-dir',
                        pid, host, recipe_results, theirs, work)


def register_driver(recipe_results: Path, work_root: Path) -> Path:
    """Record this driver in ``recipe_results`` until its process ends (what
    :func:`warn_other_drivers` reads); returns the record's path."""
    import atexit

    from npe.files import _writer_id, write_json_atomic

    work = str(Path(work_root).resolve())
    mine = write_json_atomic(Path(recipe_results) / f'.driver.{_writer_id()}', {'work_dir': work})
    atexit.register(mine.unlink, missing_ok=True)
    return mine
