"""The shared download helper against a real HTTP server on 127.0.0.1, and safe extraction."""
from __future__ import annotations

import io
import os
import tarfile
import zipfile

import pytest

from datasets_helpers import md5, sha256, tar_bytes
from npe.datasets.download import (Source, checksum_matches, display_url, fetch, fetch_all, parse_checksum,
                                   safe_extract, source_url)
from npe.errors import UserError
from npe.logs import showing_messages

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, not all one byte, so a spliced resume would show


def test_parse_checksum_forms():
    assert parse_checksum("SHA256:" + "A" * 64) == ("sha256", "a" * 64)
    assert parse_checksum("d" * 32) == ("md5", "d" * 32)
    assert parse_checksum("sha256:7d77e78b") == ("sha256", "7d77e78b")
    for bad in ("sha256:xyz12345", "crc32:12345678", "sha256:1234", "md5:" + "a" * 40):
        with pytest.raises(UserError):
            parse_checksum(bad)


def test_checksum_prefix_and_md5(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(PAYLOAD)
    assert checksum_matches(f, sha256(PAYLOAD)[:15])[0]  # "sha256:" + 8 hex
    assert checksum_matches(f, md5(PAYLOAD))[0]
    assert not checksum_matches(f, "sha256:00000000")[0]


def test_download_verifies_and_cleans_up(server, tmp_path):
    url = server.add("blob.bin", PAYLOAD)
    path = fetch(Source(url, "blob.bin", sha256(PAYLOAD)), tmp_path)
    assert path == tmp_path / "blob.bin" and path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin"]  # no .part, no .lock
    # Second call: verified from disk, no request.
    n = len(server.requests)
    assert fetch(Source(url, "blob.bin", sha256(PAYLOAD)), tmp_path) == path
    assert len(server.requests) == n


def test_download_cut_halfway_resumes_with_range(server, tmp_path):
    url = server.add("blob.bin", PAYLOAD)
    server.httpd.cut_once.add("/blob.bin")
    path = fetch(Source(url, "blob.bin", sha256(PAYLOAD)), tmp_path)
    assert path.read_bytes() == PAYLOAD
    ranges = [r for p, r in server.requests if p == "/blob.bin"]
    assert ranges[0] is None
    assert len(ranges) == 2 and ranges[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_partial_file_from_earlier_run_is_resumed(server, tmp_path):
    url = server.add("blob.bin", PAYLOAD)
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD[:1000])
    fetch(Source(url, "blob.bin", sha256(PAYLOAD)), tmp_path)
    assert server.requests == [("/blob.bin", "bytes=1000-")]
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    url = server.add("blob.bin", PAYLOAD)
    server.httpd.ignore_range = True
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD[:1000])
    fetch(Source(url, "blob.bin", sha256(PAYLOAD)), tmp_path)
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_verified(server, tmp_path):
    url = server.add("blob.bin", PAYLOAD)
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD)
    fetch(Source(url, "blob.bin", sha256(PAYLOAD)), tmp_path)
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD


def test_wrong_checksum_moves_file_aside(server, tmp_path):
    url = server.add("blob.bin", PAYLOAD)
    with pytest.raises(UserError) as err:
        fetch(Source(url, "blob.bin", "sha256:" + "0" * 64), tmp_path)
    msg = str(err.value)
    assert "does not match its checksum" in msg and "\n" not in msg
    assert not (tmp_path / "blob.bin").exists()
    assert len(list(tmp_path.glob("blob.bin.part.bad-*"))) == 1


def test_hand_placed_bad_file_is_moved_aside_and_fetched_again(server, tmp_path, capsys):
    url = server.add("blob.bin", PAYLOAD)
    (tmp_path / "blob.bin").write_bytes(b"not the file")
    with showing_messages():   # the lines the commands show
        fetch(Source(url, "blob.bin", sha256(PAYLOAD)), tmp_path)
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD
    assert [p.read_bytes() for p in tmp_path.glob("blob.bin.bad-*")] == [b"not the file"]
    assert "moved aside" in capsys.readouterr().err


def test_server_down_gives_one_offline_message(dead_base, tmp_path):
    sources = [Source(f"{dead_base}/a.tar", "a.tar", "sha256:" + "1" * 64),
               Source(f"{dead_base}/b.zip", "b.zip", "md5:" + "2" * 32)]
    with pytest.raises(UserError) as err:
        fetch_all(sources, tmp_path / "downloads", what="demo")
    lines = str(err.value).splitlines()
    assert lines[0].startswith("cannot fetch 2 file(s) for demo (source unreachable")
    text = str(err.value)
    for s in sources:
        assert s.url in text and str((tmp_path / "downloads" / s.filename).resolve()) in text
    assert list((tmp_path / "downloads").iterdir()) == []  # no file, no .part, no .lock left behind


def test_http_404_is_reported_not_retried(server, tmp_path):
    with pytest.raises(UserError, match=r"HTTP 404"):
        fetch(Source(server.base + "/missing.bin", "missing.bin", sha256(b"x")), tmp_path)
    assert len(server.requests) == 1


def test_server_error_is_retried_then_reported(server, tmp_path):
    server.add("blob.bin", PAYLOAD)
    server.httpd.status_override = 503
    with pytest.raises(UserError, match=r"HTTP 503"):
        fetch(Source(server.base + "/blob.bin", "blob.bin", sha256(PAYLOAD)), tmp_path)
    assert len(server.requests) == 4  # first try + NPE_DOWNLOAD_RETRIES=3


def test_offline_never_touches_network_and_uses_hand_placed(server, tmp_path):
    url = server.add("blob.bin", PAYLOAD)
    src = Source(url, "blob.bin", sha256(PAYLOAD))
    with pytest.raises(UserError, match=r"^cannot fetch 1 file\(s\) .*offline mode"):
        fetch(src, tmp_path, offline=True)
    (tmp_path / "blob.bin").write_bytes(PAYLOAD)
    assert fetch(src, tmp_path, offline=True).read_bytes() == PAYLOAD
    assert server.requests == []


def test_mirror_fetches_by_file_name(server, dead_base, tmp_path, monkeypatch):
    server.add("blob.bin", PAYLOAD)
    src = Source(f"{dead_base}/far/away/blob.bin", "blob.bin", sha256(PAYLOAD))
    assert source_url(src, server.base + "/") == server.base + "/blob.bin"
    fetch(src, tmp_path, mirror=server.base)
    assert server.requests == [("/blob.bin", None)]
    # A mirror that serves a different file still fails the kit's own checksum.
    server.add("other.bin", b"evil")
    with pytest.raises(UserError, match="does not match"):
        fetch(Source(f"{dead_base}/other.bin", "other.bin", sha256(b"good")), tmp_path, mirror=server.base)


def test_gdrive_offline_message_names_drive_url(tmp_path):
    src = Source("gdrive:1AbCdEfGhIjKlMnOp", "model.pth", "sha256:" + "3" * 64)
    assert display_url(src.url) == "https://drive.google.com/uc?id=1AbCdEfGhIjKlMnOp"
    with pytest.raises(UserError) as err:
        fetch(src, tmp_path, offline=True)
    assert "https://drive.google.com/uc?id=1AbCdEfGhIjKlMnOp" in str(err.value)
    assert str((tmp_path / "model.pth").resolve()) in str(err.value)


def test_gdrive_goes_through_gdown_and_unreachable_is_reported(dead_base, tmp_path, monkeypatch):
    # gdown (requests) honours HTTPS_PROXY: point it at a dead local port so nothing leaves the machine.
    import gdown  # noqa: F401 - a dependency: missing is a failure, not a skip
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", dead_base)
    monkeypatch.setenv("https_proxy", dead_base)
    src = Source("gdrive:1AbCdEfGhIjKlMnOp", "model.pth", "sha256:" + "3" * 64)
    with pytest.raises(UserError) as err:
        fetch(src, tmp_path)
    first = str(err.value).splitlines()[0]
    assert first.startswith("cannot fetch 1 file(s)") and "source unreachable" in first
    assert not (tmp_path / "model.pth").exists()


# ------------------------------------------------------------------------------------------ extraction
def _tar_with(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        info.size = len(data) if info.isfile() else 0
        tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _sym(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize("info, pattern", [
    (tarfile.TarInfo("../evil.txt"), r"'\.\.'"),
    (tarfile.TarInfo("sub/../../evil.txt"), r"'\.\.'"),
    (tarfile.TarInfo("/tmp/evil.txt"), "absolute path"),
    (_sym("link", "../../etc/passwd"), "points outside"),
    (_sym("link", "/etc/passwd"), "absolute path"),
    (_sym("hard", "../outside.txt", tarfile.LNKTYPE), "points outside"),
])
def test_safe_extract_refuses_escaping_tar_members(tmp_path, info, pattern):
    archive = tmp_path / "bad.tar"
    archive.write_bytes(_tar_with(info, b"evil" if info.isfile() else b""))
    target = tmp_path / "out" / "inner"
    with pytest.raises(UserError, match=pattern):
        safe_extract(archive, target)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()
    assert not (target / "ok.txt").exists()  # refused before anything was written


def test_safe_extract_allows_links_inside(tmp_path):
    archive = tmp_path / "good.tar"
    archive.write_bytes(_tar_with(_sym("d/link", "../ok.txt")))
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "link").read_text() == "ok"


def test_safe_extract_zip_refuses_parent_and_absolute(tmp_path):
    for name, pattern in (("../evil.txt", r"'\.\.'"), ("/abs/evil.txt", "absolute")):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("fine.txt", "x")
            zf.writestr(zipfile.ZipInfo(name), "evil")
        archive = tmp_path / "bad.zip"
        archive.write_bytes(buf.getvalue())
        with pytest.raises(UserError, match=pattern):
            safe_extract(archive, tmp_path / "out")
        assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_truncated_tar_is_a_clear_error(tmp_path):
    data = tar_bytes([("a.bin", os.urandom(50_000)), ("b.bin", os.urandom(50_000))])
    archive = tmp_path / "cut.tar"
    archive.write_bytes(data[: len(data) // 3])
    with pytest.raises(UserError, match="truncated or corrupt"):
        safe_extract(archive, tmp_path / "out")


def test_stale_partial_from_another_version_is_replaced(server, tmp_path):
    url = server.add("blob.bin", PAYLOAD)
    (tmp_path / "blob.bin.part").write_bytes(b"\xff" * 1000)  # not a prefix of the current file
    assert fetch(Source(url, "blob.bin", sha256(PAYLOAD)), tmp_path).read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == ["bytes=1000-", None]
    assert len(list(tmp_path.glob("blob.bin.part.bad-*"))) == 1
