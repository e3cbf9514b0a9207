"""What a driver checks before any work starts, so that bad input is one line up front and never a
traceback after hours of training: every folder it will write (:func:`npe.files.check_output_dir`),
and that the result files already in a recipe's folder are that recipe's
(:func:`npe.results.check_recipe_folder`). Leftover temporary files of killed writers are removed.
"""
from __future__ import annotations

from pathlib import Path

from npe.files import check_output_dir, clean_stale_temps
from npe.recipes import Recipe
from npe.results import TABLES_DIRNAME, check_recipe_folder


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
