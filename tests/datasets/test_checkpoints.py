"""Initial checkpoints: verified by the sha256 prefix in the name or a given hash, cached under the data root."""
from __future__ import annotations

import hashlib
import os

import pytest

from npe.datasets import checkpoint_path, checkpoint_source, fetch_checkpoint, known_checkpoint_url
from npe.datasets.checkpoints import KNOWN
from npe.errors import UserError

BLOB = os.urandom(300_000)
PREFIX = hashlib.sha256(BLOB).hexdigest()[:8]


def test_known_checkpoints_table():
    assert len(KNOWN) == 6
    url = known_checkpoint_url("mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py")
    assert url == ("https://download.openmmlab.com/mmsegmentation/v0.5/unet/fcn_unet_s5-d16_128x128_40k_stare/"
                   "fcn_unet_s5-d16_128x128_40k_stare_20201223_191051-7d77e78b.pth")
    assert checkpoint_source(url).checksum == "sha256:7d77e78b"
    assert known_checkpoint_url("mmseg::nothing.py") is None


def test_source_forms():
    assert checkpoint_source("gdrive:1AbCdEfGhIjKlMnOp", "sha256:" + "a" * 64) == (
        "gdrive:1AbCdEfGhIjKlMnOp", "gdrive-1AbCdEfGhIjKlMnOp.pth", "sha256:" + "a" * 64)
    assert checkpoint_source("https://h/x/m.pth", "B" * 32).checksum == "md5:" + "b" * 32
    for bad, pattern in (("https://h/x/model.pth", "no checksum"), ("ftp://h/a-12345678.pth", "neither"),
                         ("gdrive:../x", "not a Google Drive file id")):
        with pytest.raises(UserError, match=pattern):
            checkpoint_source(bad)


def test_fetch_verifies_name_prefix_and_caches(server, tmp_path):
    name = f"fcn_demo_20201223_191051-{PREFIX}.pth"
    url = server.add(name, BLOB)
    path = fetch_checkpoint(url, data_root=tmp_path)
    assert path == tmp_path / "checkpoints" / name == checkpoint_path(url, data_root=tmp_path)
    assert path.read_bytes() == BLOB
    server.close()  # cached: no network needed any more
    assert fetch_checkpoint(url, data_root=tmp_path) == path
    assert fetch_checkpoint(url, data_root=tmp_path, offline=True) == path


def test_fetch_with_given_hash_and_wrong_prefix(server, tmp_path):
    url = server.add("plain.pth", BLOB)
    assert fetch_checkpoint(url, "sha256:" + hashlib.sha256(BLOB).hexdigest(), data_root=tmp_path).is_file()
    bad = server.add("bad_20200101-00000000.pth", BLOB)
    with pytest.raises(UserError, match="does not match its checksum"):
        fetch_checkpoint(bad, data_root=tmp_path)
    assert not (tmp_path / "checkpoints" / "bad_20200101-00000000.pth").exists()


def test_checkpoint_offline_message_and_hand_placed(dead_base, tmp_path):
    url = f"{dead_base}/v0.5/demo-{PREFIX}.pth"
    with pytest.raises(UserError) as err:
        fetch_checkpoint(url, data_root=tmp_path)
    assert str(err.value).splitlines()[0].startswith("cannot fetch 1 file(s) for checkpoint")
    assert str((tmp_path / "checkpoints" / f"demo-{PREFIX}.pth").resolve()) in str(err.value)
    (tmp_path / "checkpoints" / f"demo-{PREFIX}.pth").write_bytes(BLOB)
    assert fetch_checkpoint(url, data_root=tmp_path, offline=True).read_bytes() == BLOB


def test_checkpoint_via_mirror(server, dead_base, tmp_path, monkeypatch):
    server.add(f"demo-{PREFIX}.pth", BLOB)
    monkeypatch.setenv("NPE_MIRROR", server.base)
    path = fetch_checkpoint(f"{dead_base}/deep/path/demo-{PREFIX}.pth", data_root=tmp_path)
    assert path.read_bytes() == BLOB and server.requests == [(f"/demo-{PREFIX}.pth", None)]
