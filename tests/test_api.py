"""The package-level Python API: the README's example runs as written, and the API is documented."""
from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import npe
from npe.paths import repo_root

API = ("apply_npe", "train", "evaluate", "run_recipe", "load_results")


def readme_example() -> str:
    """The ```python block of the README's "Python API" section."""
    text = (repo_root() / "README.md").read_text()
    section = text.split("### Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's Python API section has no python block"
    return match.group(1)


def test_api_is_documented_and_typed():
    for name in API:
        func = getattr(npe, name)
        assert callable(func) and func.__doc__ and len(func.__doc__.strip()) > 80, name
        hints = inspect.signature(func).parameters
        assert all(p.annotation is not inspect.Parameter.empty for p in hints.values()
                   if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "cfg"), name
    assert issubclass(npe.errors.ConfigError, npe.errors.UserError)
    with pytest.raises(AttributeError):
        npe.no_such_function  # noqa: B018


def test_load_results_reads_the_committed_results():
    records = npe.load_results("longtail_synth")
    assert records and all(r["schema"] == "npe-result/1" and Path(r["path"]).is_file() for r in records)
    assert {r["variant"] for r in records} >= {"baseline", "counted_la", "npe1"}
    assert npe.load_results("longtail_synth", only_ok=True) == [r for r in records if r["status"] == "ok"]


def test_run_recipe_dry_run_takes_a_name(tmp_path, monkeypatch, capsys):
    for key in ("NPE_DATA_ROOT", "NPE_RESULTS_DIR", "NPE_WORK_DIR"):
        monkeypatch.setenv(key, str(tmp_path / key))
    assert npe.run_recipe("smoke", dry_run=True) == 0
    assert "recipe smoke:" in capsys.readouterr().out
    with pytest.raises(npe.errors.RecipeError, match="no variant named nope"):
        npe.run_recipe("smoke", variants=["nope"], dry_run=True)


@pytest.mark.integration
def test_readme_example_runs_on_smoke(tmp_path):
    env = dict(os.environ, NPE_DATA_ROOT=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-c", readme_example()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    rows = [line.split(" ", 2) for line in lines if line.startswith(("1.0 ", "2.0 "))]
    assert [r[0] for r in rows] == ["1.0", "2.0"] and all(float(r[1]) >= 0 for r in rows)
    assert any(line.startswith("error: config") and "no_such_config.py" in line for line in lines)
    assert re.match(r"\d+ \w+ \d", lines[-1])
    assert (tmp_path / "work_dirs" / "api_demo" / "last_checkpoint").is_file()
