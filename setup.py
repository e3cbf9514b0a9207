"""Build hook, the only thing here (the project is described in pyproject.toml): a wheel also ships
the checkout's ``recipes/*.yaml`` as ``npe/recipes_builtin/``, so a non-editable installation (a
wheel, the Docker image) finds the recipes (``npe.recipes.recipe_dirs``); in a checkout, its own
``recipes/`` folder comes first."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithRecipes(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "npe" / "recipes_builtin"
        target.mkdir(parents=True, exist_ok=True)
        for recipe in sorted((HERE / "recipes").glob("*.yaml")):
            shutil.copy2(recipe, target / recipe.name)


setup(cmdclass={"build_py": BuildPyWithRecipes})
