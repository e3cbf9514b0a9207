"""``npe-data``: prepare / list / sources / checkpoint, exit status 2 with one clear message on bad input."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from npe.cli.data import main
from npe.datasets import MARKER


def _run(*args, env=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "npe.cli.data", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_unknown_dataset_exits_2_with_one_line():
    proc = _run("prepare", "nope")
    assert proc.returncode == 2
    assert proc.stderr == "error: unknown dataset 'nope'; known datasets: stare, ade20k, smoke, longtail_synth\n"
    assert proc.stdout == ""


def test_offline_stare_lists_files_urls_and_paths(tmp_path):
    proc = _run("prepare", "stare", "--offline", "--data-root", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("error: cannot fetch 3 file(s) for stare (offline mode (--offline))")
    for name in ("stare-images.tar", "labels-ah.tar", "labels-vk.tar"):
        assert f"    from:   http://cecas.clemson.edu/~ahoover/stare/probing/{name}" in lines
        assert f"    put at: {(tmp_path / 'downloads' / name).resolve()}" in lines
    assert not (tmp_path / "STARE").exists()


def test_mirror_env_changes_where_from(tmp_path):
    proc = _run("prepare", "ade20k", "--offline", "--data-root", str(tmp_path),
                env={"NPE_MIRROR": "http://mirror.invalid/npe"})
    assert proc.returncode == 2
    assert "    from:   http://mirror.invalid/npe/ADEChallengeData2016.zip" in proc.stderr.splitlines()


def test_prepare_in_subprocess_matches_in_process_bytes(tmp_path):
    proc = _run("prepare", "longtail_synth", "--data-root", str(tmp_path / "sub"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"longtail_synth: prepared at {tmp_path / 'sub' / 'longtail_synth'}"
    assert main(["prepare", "longtail_synth", "--data-root", str(tmp_path / "here")]) == 0
    a, b = tmp_path / "sub" / "longtail_synth", tmp_path / "here" / "longtail_synth"
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != MARKER)
    assert len(files) == 641
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_list_and_env_data_root(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NPE_DATA_ROOT", str(tmp_path))
    assert main(["prepare", "smoke"]) == 0
    (tmp_path / "STARE").mkdir()  # a folder without a marker
    capsys.readouterr()
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"data root: {tmp_path}"
    rows = {line.split()[0]: line.split() for line in out[2:6]}
    assert rows["smoke"][1] == "prepared" and rows["smoke"][-1] == str(tmp_path / "smoke")
    assert rows["smoke"][2].endswith("Z")  # when it was verified / built
    assert rows["stare"][1] == "incomplete" and rows["ade20k"][1] == "missing"
    assert out[-1] == f"checkpoints ({tmp_path / 'checkpoints'}): none"


def test_sources_command(capsys, tmp_path):
    assert main(["sources", "ade20k", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "md5:7328b3957e407ddae1d3cbf487f149ef" in out and str(tmp_path / "downloads") in out
    assert main(["sources", "smoke"]) == 0
    assert "nothing to download" in capsys.readouterr().out


def test_checkpoint_command_errors_cleanly(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["checkpoint", "https://example.invalid/model.pth", "--data-root", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no checksum for checkpoint") and err.count("\n") == 1
