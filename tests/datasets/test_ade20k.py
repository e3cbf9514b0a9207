"""ADE20K: a zip in the ADEChallengeData2016 layout served on 127.0.0.1; md5, unpack, counts."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from datasets_helpers import ade_zip, md5
from npe import datasets
from npe.datasets import MARKER, Source
from npe.errors import UserError

ZIP = "ADEChallengeData2016.zip"


def _spec(server, data, counts=(6, 3)):
    spec = datasets.get("ade20k").with_sources([Source(server.add(ZIP, data), ZIP, md5(data))])
    return dataclasses.replace(spec, expected_counts=counts)


def test_registered_source_and_classes():
    spec = datasets.get("ade20k")
    assert spec.files_to_fetch() == [Source("http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
                                            ZIP, "md5:7328b3957e407ddae1d3cbf487f149ef")]
    assert spec.folder == "ade/ADEChallengeData2016" and spec.reduce_zero_label and spec.num_classes == 150
    assert spec.counts_expected() == (20210, 2000)


def test_ade20k_unpacks_counts_and_marks(server, tmp_path):
    data, masks = ade_zip()
    spec = _spec(server, data)
    out = spec.prepare(tmp_path)
    assert out == tmp_path / "ade" / "ADEChallengeData2016"
    assert (out / "objectInfo150.txt").is_file() and (out / MARKER).is_file()
    assert len(list((out / "images" / "training").glob("*.jpg"))) == 6
    assert len(list((out / "annotations" / "validation").glob("*.png"))) == 3
    assert sorted(p.name for p in (tmp_path / "ade").iterdir()) == ["ADEChallengeData2016"]
    # reduce_zero_label: 0 is ignored, k counts as class k-1; 150 entries.
    expected = np.zeros(150, dtype=np.int64)
    for (split, _), m in masks.items():
        if split == "training":
            expected += np.bincount(m.ravel(), minlength=151)[1:151]
    counts = spec.class_pixel_counts(tmp_path)
    assert counts.shape == (150,) and counts.tolist() == expected.tolist()
    n = len(server.requests)
    assert spec.prepare(tmp_path) == out and len(server.requests) == n


def test_count_override_by_environment(server, tmp_path, monkeypatch):
    data, _ = ade_zip(n_train=4, n_val=2)
    spec = datasets.get("ade20k").with_sources([Source(server.add(ZIP, data), ZIP, md5(data))])
    monkeypatch.setenv("NPE_ADE20K_EXPECTED_COUNTS", "4,2")
    assert spec.counts_expected() == (4, 2)
    spec.prepare(tmp_path)
    assert spec.is_prepared(tmp_path)
    monkeypatch.setenv("NPE_ADE20K_EXPECTED_COUNTS", "four")
    with pytest.raises(UserError, match="NPE_ADE20K_EXPECTED_COUNTS"):
        spec.counts_expected()


def test_wrong_counts_leave_nothing_ready(server, tmp_path):
    data, _ = ade_zip(n_train=5, n_val=3)
    spec = _spec(server, data, counts=(6, 3))
    with pytest.raises(UserError, match="training has 5 images and 5 masks, expected 6"):
        spec.prepare(tmp_path)
    assert not (tmp_path / "ade" / "ADEChallengeData2016").exists()
    assert list((tmp_path / "ade").iterdir()) == []


def test_default_counts_refuse_a_small_zip(server, tmp_path):
    data, _ = ade_zip()
    spec = datasets.get("ade20k").with_sources([Source(server.add(ZIP, data), ZIP, md5(data))])
    with pytest.raises(UserError, match="expected 20210"):
        spec.prepare(tmp_path)


def test_wrong_md5_and_truncated_zip(server, tmp_path):
    data, _ = ade_zip()
    spec = datasets.get("ade20k").with_sources([Source(server.add(ZIP, data), ZIP, "md5:" + "0" * 32)])
    with pytest.raises(UserError, match="does not match its checksum"):
        dataclasses.replace(spec, expected_counts=(6, 3)).prepare(tmp_path / "a")
    cut = data[: len(data) // 2]
    with pytest.raises(UserError, match="truncated or corrupt"):
        _spec(server, cut).prepare(tmp_path / "b")
    for root in (tmp_path / "a", tmp_path / "b"):
        assert not (root / "ade" / "ADEChallengeData2016").exists()


def test_zip_with_escaping_member_is_refused(server, tmp_path):
    data, _ = ade_zip(extra=[("ADEChallengeData2016/../../evil.txt", "x")])
    with pytest.raises(UserError, match=r"'\.\.'"):
        _spec(server, data).prepare(tmp_path / "data")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "data" / "evil.txt").exists()
    assert not (tmp_path / "data" / "ade" / "ADEChallengeData2016").exists()


def test_class_names_match_mmseg():
    import mmseg.datasets as mmseg_datasets  # a dependency: missing is a failure, not a skip
    ours = datasets.get("ade20k").class_names
    theirs = tuple(c.strip() for c in mmseg_datasets.ADE20KDataset.METAINFO["classes"])
    assert ours == theirs
