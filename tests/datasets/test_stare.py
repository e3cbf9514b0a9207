"""STARE: real-format archives (tar of gzipped PPM) served on 127.0.0.1, converted per docs/datasets.md."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from datasets_helpers import (STARE_STEMS, STARE_TRAIN, STARE_VAL, ppm, sha256, stare_archives, tar_bytes)
from npe import datasets
from npe.datasets import MARKER, Source
from npe.datasets.stare import label_from_map
from npe.errors import UserError

NAMES = ("stare-images.tar", "labels-ah.tar", "labels-vk.tar")


def _serve(server, tars, checksums=None):
    """Spec whose sources point at the local server (checksums of the built archives)."""
    return datasets.get("stare").with_sources(
        [Source(server.add(n, tars[n]), n, (checksums or {}).get(n) or sha256(tars[n])) for n in NAMES])


def _assert_nothing_ready(root):
    assert not (root / "STARE").exists()
    assert not list(root.glob("STARE.tmp-*"))


def test_registered_sources_are_the_spec_ones():
    spec = datasets.get("stare")
    assert [s.filename for s in spec.files_to_fetch()] == list(NAMES)
    assert spec.files_to_fetch()[0] == (
        "http://cecas.clemson.edu/~ahoover/stare/probing/stare-images.tar", "stare-images.tar",
        "sha256:5f7b509b6067cad4f1be84933145d783de9ec087b3eaaf4db0103dd0144dd433")
    assert spec.folder == "STARE" and spec.mmseg_type == "STAREDataset" and spec.num_classes == 2


def test_label_from_map_uses_first_channel_and_grey_maps():
    rgb = np.array([[[0, 255, 255], [127, 0, 0], [128, 0, 0], [255, 0, 0]]], dtype=np.uint8)
    assert label_from_map(rgb).tolist() == [[0, 0, 1, 1]]
    assert label_from_map(np.array([[0, 255]], dtype=np.uint8)).tolist() == [[0, 1]]


def test_stare_prepares_exact_layout_names_and_values(server, tmp_path):
    tars, (images, ah, vk) = stare_archives()
    spec = _serve(server, tars)
    root = tmp_path / "data"
    out = spec.prepare(root)
    assert out == root / "STARE"
    for split, stems in (("training", STARE_TRAIN), ("validation", STARE_VAL)):
        assert sorted(p.name for p in (out / "images" / split).iterdir()) == [f"{s}.png" for s in stems]
        assert sorted(p.name for p in (out / "annotations" / split).iterdir()) == sorted(
            [f"{s}.ah.png" for s in stems] + [f"{s}.vk.png" for s in stems])
        for stem in stems:
            with Image.open(out / "images" / split / f"{stem}.png") as im:
                assert im.mode == "RGB" and np.array_equal(np.asarray(im), images[stem])
            for tag, maps in (("ah", ah), ("vk", vk)):
                with Image.open(out / "annotations" / split / f"{stem}.{tag}.png") as im:
                    assert im.mode == "L"
                    lab = np.asarray(im)
                assert set(np.unique(lab)) <= {0, 1}
                assert np.array_equal(lab, maps[stem][..., 0] // 128)
    marker = json.loads((out / MARKER).read_text())
    assert marker["dataset"] == "stare"
    assert [s["checksum"] for s in marker["built_from"]["sources"]] == [sha256(tars[n]) for n in NAMES]
    assert sorted(p.name for p in (root / "downloads").iterdir()) == sorted(NAMES)
    assert sorted(p.name for p in root.iterdir()) == ["STARE", "downloads"]
    # Counts of the .ah labels, the ones MMSeg's STAREDataset reads.
    expected = np.zeros(2, dtype=np.int64)
    for stem in STARE_TRAIN:
        expected += np.bincount((ah[stem][..., 0] // 128).ravel(), minlength=2)
    assert spec.class_pixel_counts(root).tolist() == expected.tolist()
    assert json.loads((out / ".npe-class-counts.json").read_text())["counts"]["training"] == expected.tolist()


def test_second_prepare_is_instant_and_offline(server, tmp_path):
    tars, _ = stare_archives()
    spec = _serve(server, tars)
    spec.prepare(tmp_path)
    n = len(server.requests)
    server.close()
    assert spec.prepare(tmp_path, offline=True) == tmp_path / "STARE"
    assert spec.is_prepared(tmp_path) and len(server.requests) == n
    # The registered spec (real checksums) does not take this folder for the real STARE.
    assert not datasets.get("stare").is_prepared(tmp_path)


def test_download_cut_halfway_resumes_and_ends_verified(server, tmp_path):
    tars, _ = stare_archives()
    spec = _serve(server, tars)
    server.httpd.cut_once.add("/stare-images.tar")
    spec.prepare(tmp_path)
    ranges = [r for p, r in server.requests if p == "/stare-images.tar"]
    assert ranges == [None, f"bytes={len(tars['stare-images.tar']) // 2}-"]
    assert (tmp_path / "downloads" / "stare-images.tar").read_bytes() == tars["stare-images.tar"]
    assert spec.is_prepared(tmp_path)


def test_wrong_checksum_is_one_error_and_nothing_ready(server, tmp_path):
    tars, _ = stare_archives()
    spec = _serve(server, tars, {"labels-ah.tar": "sha256:" + "ab" * 32})
    with pytest.raises(UserError) as err:
        spec.prepare(tmp_path)
    assert "labels-ah.tar" in str(err.value) and "does not match its checksum" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
    _assert_nothing_ready(tmp_path)
    assert list((tmp_path / "downloads").glob("labels-ah.tar*.bad-*"))
    assert not (tmp_path / "downloads" / "labels-ah.tar").exists()


def test_truncated_archive_is_one_error_and_nothing_ready(server, tmp_path):
    tars, _ = stare_archives()
    cut = tars["labels-vk.tar"][: len(tars["labels-vk.tar"]) * 2 // 3]
    tars = dict(tars, **{"labels-vk.tar": cut})  # the source itself is cut; its checksum matches
    spec = _serve(server, tars)
    with pytest.raises(UserError, match=r"labels-vk\.tar .*truncated") as err:
        spec.prepare(tmp_path)
    assert len(str(err.value).splitlines()) == 1
    _assert_nothing_ready(tmp_path)


def test_truncated_download_against_real_checksum_fails_verification(server, tmp_path):
    tars, _ = stare_archives()
    full = sha256(tars["stare-images.tar"])
    tars = dict(tars, **{"stare-images.tar": tars["stare-images.tar"][:5000]})
    spec = _serve(server, tars, {"stare-images.tar": full})
    with pytest.raises(UserError, match="does not match its checksum"):
        spec.prepare(tmp_path)
    _assert_nothing_ready(tmp_path)


@pytest.mark.parametrize("evil, pattern", [("../im9999.ppm.gz", r"'\.\.'"),
                                           ("/tmp/im9999.ppm.gz", "absolute path")])
def test_tar_with_escaping_member_is_refused(server, tmp_path, evil, pattern):
    tars, (images, _, _) = stare_archives()
    members = [(f"{s}.ppm.gz", ppm(images[s])) for s in STARE_STEMS[:19]] + [(evil, b"x")]
    tars = dict(tars, **{"stare-images.tar": tar_bytes(members)})
    spec = _serve(server, tars)
    with pytest.raises(UserError, match=pattern) as err:
        spec.prepare(tmp_path / "data")
    assert len(str(err.value).splitlines()) == 1
    _assert_nothing_ready(tmp_path / "data")
    assert not (tmp_path / "im9999.ppm.gz").exists() and not (tmp_path / "data" / "im9999.ppm.gz").exists()


def test_tar_with_link_pointing_out_is_refused(server, tmp_path):
    tars, _ = stare_archives()
    link = tarfile.TarInfo("im0001.ah.ppm.gz")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(tars["labels-ah.tar"])) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for m in src.getmembers():
            if m.name == "im0001.ah.ppm.gz":
                dst.addfile(link)
            else:
                dst.addfile(m, src.extractfile(m))
    spec = _serve(server, dict(tars, **{"labels-ah.tar": buf.getvalue()}))
    with pytest.raises(UserError, match="points outside"):
        spec.prepare(tmp_path)
    _assert_nothing_ready(tmp_path)


def test_wrong_member_count_is_refused(server, tmp_path):
    tars, (images, _, _) = stare_archives()
    members = [(f"{s}.ppm.gz", ppm(images[s])) for s in STARE_STEMS[:19]]
    spec = _serve(server, dict(tars, **{"stare-images.tar": tar_bytes(members)}))
    with pytest.raises(UserError, match="has 19 members, expected 20"):
        spec.prepare(tmp_path)
    _assert_nothing_ready(tmp_path)


def test_server_down_lists_every_file_url_and_path(dead_base, tmp_path):
    tars, _ = stare_archives()
    spec = datasets.get("stare").with_sources(
        [Source(f"{dead_base}/stare/{n}", n, sha256(tars[n])) for n in NAMES])
    with pytest.raises(UserError) as err:
        spec.prepare(tmp_path)
    lines = str(err.value).splitlines()
    assert lines[0].startswith("cannot fetch 3 file(s) for stare (source unreachable")
    for n in NAMES:
        assert f"    from:   {dead_base}/stare/{n}" in lines
        assert f"    put at: {(tmp_path / 'downloads' / n).resolve()}" in lines
    _assert_nothing_ready(tmp_path)


def test_hand_placed_files_are_verified_and_used_offline(dead_base, tmp_path):
    tars, _ = stare_archives()
    spec = datasets.get("stare").with_sources(
        [Source(f"{dead_base}/{n}", n, sha256(tars[n])) for n in NAMES])
    (tmp_path / "downloads").mkdir()
    for n in NAMES[:2]:
        (tmp_path / "downloads" / n).write_bytes(tars[n])
    (tmp_path / "downloads" / NAMES[2]).write_bytes(b"corrupted copy")
    with pytest.raises(UserError) as err:
        spec.prepare(tmp_path, offline=True)
    assert str(err.value).startswith("cannot fetch 1 file(s) for stare (offline mode")
    assert NAMES[2] in str(err.value) and NAMES[0] not in str(err.value)
    assert list((tmp_path / "downloads").glob(f"{NAMES[2]}.bad-*"))  # moved aside, never used
    (tmp_path / "downloads" / NAMES[2]).write_bytes(tars[NAMES[2]])
    assert spec.prepare(tmp_path, offline=True) == tmp_path / "STARE"
    assert spec.is_prepared(tmp_path)


def test_mirror_flag_and_env(server, dead_base, tmp_path, monkeypatch):
    tars, _ = stare_archives()
    for n in NAMES:
        server.add(n, tars[n])
    spec = datasets.get("stare").with_sources([Source(f"{dead_base}/{n}", n, sha256(tars[n])) for n in NAMES])
    spec.prepare(tmp_path / "a", mirror=server.base)
    monkeypatch.setenv("NPE_MIRROR", server.base + "/")
    spec.prepare(tmp_path / "b")
    assert spec.is_prepared(tmp_path / "a") and spec.is_prepared(tmp_path / "b")
    assert {p for p, _ in server.requests} == {"/" + n for n in NAMES}


def test_foreign_folder_is_not_overwritten(server, tmp_path):
    tars, _ = stare_archives()
    spec = _serve(server, tars)
    (tmp_path / "STARE").mkdir()
    (tmp_path / "STARE" / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="not prepared by the kit"):
        spec.prepare(tmp_path)
    assert (tmp_path / "STARE" / "mine.txt").read_text() == "keep"


def test_rebuild_when_sources_change_replaces_folder(server, tmp_path):
    tars, _ = stare_archives(seed=0)
    _serve(server, tars).prepare(tmp_path)
    tars2, (images2, _, _) = stare_archives(seed=1)
    names2 = {n: n.replace(".tar", "-v2.tar") for n in NAMES}
    spec2 = datasets.get("stare").with_sources(
        [Source(server.add(names2[n], tars2[n]), names2[n], sha256(tars2[n])) for n in NAMES])
    spec2.prepare(tmp_path)
    with Image.open(tmp_path / "STARE" / "images" / "training" / "im0001.png") as im:
        assert np.array_equal(np.asarray(im), images2["im0001"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["STARE", "downloads"]


def test_stale_tmp_folder_of_dead_process_is_cleaned(server, tmp_path):
    tars, _ = stare_archives()
    stale = tmp_path / "STARE.tmp-999999999"
    stale.mkdir(parents=True)
    (stale / "half.png").write_bytes(b"")
    _serve(server, tars).prepare(tmp_path)
    assert not stale.exists()


def test_class_pixel_counts_needs_prepared(tmp_path):
    with pytest.raises(UserError, match="npe-data prepare stare"):
        datasets.get("stare").class_pixel_counts(tmp_path)


def test_unknown_dataset_name():
    with pytest.raises(UserError, match="unknown dataset 'nope'; known datasets: stare, ade20k"):
        datasets.get("nope")
    assert set(datasets.names()) == {"stare", "ade20k", "smoke", "longtail_synth"}

