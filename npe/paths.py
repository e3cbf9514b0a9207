"""Where the kit keeps data, results and work dirs (overridable by flags and environment variables)."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The checkout the package was installed from, else the current directory."""
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").is_file():
        return candidate
    return Path.cwd()


def _pick(override: str | os.PathLike | None, env: str, default: Path) -> Path:
    if override:
        return Path(override).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return default


def data_root(override: str | os.PathLike | None = None) -> Path:
    """Data root: ``override`` > ``$NPE_DATA_ROOT`` > ``<repo>/segmentation/data``."""
    return _pick(override, "NPE_DATA_ROOT", repo_root() / "segmentation" / "data")


def results_dir(override: str | os.PathLike | None = None) -> Path:
    """Results: ``override`` > ``$NPE_RESULTS_DIR`` > ``<repo>/results``."""
    return _pick(override, "NPE_RESULTS_DIR", repo_root() / "results")


def work_root(override: str | os.PathLike | None = None) -> Path:
    """Work dirs of recipe runs: ``override`` > ``$NPE_WORK_DIR`` > ``<repo>/work_dirs``."""
    return _pick(override, "NPE_WORK_DIR", repo_root() / "work_dirs")


def mirror(override: str | None = None) -> str | None:
    """Mirror base URL: ``override`` > ``$NPE_MIRROR`` > None (each file's home URL)."""
    return override or os.environ.get("NPE_MIRROR") or None


def offline(flag: bool = False) -> bool:
    """Offline mode: ``flag`` > ``$NPE_OFFLINE`` (1/true/yes/on) > False."""
    return bool(flag) or os.environ.get("NPE_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
