"""Generated datasets: deterministic, MMSeg layout, known long-tailed prior."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from npe import datasets
from npe.cli.data import main as npe_data
from npe.datasets import MARKER
from npe.datasets.synthetic import exponential_prior
from npe.errors import UserError


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != MARKER}


def test_smoke_is_tiny_fast_and_in_mmseg_layout(tmp_path):
    spec = datasets.get("smoke")
    t0 = time.perf_counter()
    out = spec.prepare(tmp_path)
    assert time.perf_counter() - t0 < 2.0
    assert spec.holdout_split == "holdout" and spec.num_classes == 3 and spec.mmseg_type == "SmokeDataset"
    for split, n in (("training", 16), ("validation", 8), ("holdout", 8)):
        imgs = sorted(p.name for p in (out / "images" / split).glob("*.png"))
        anns = sorted(p.name for p in (out / "annotations" / split).glob("*.png"))
        assert len(imgs) == n and imgs == anns
    with Image.open(next((out / "images" / "training").glob("*.png"))) as im:
        assert im.mode == "RGB" and im.size == (64, 64)
    with Image.open(next((out / "annotations" / "training").glob("*.png"))) as im:
        assert im.mode == "L" and set(np.unique(np.asarray(im))) <= {0, 1, 2}


def test_longtail_twice_is_byte_identical_via_cli(tmp_path, capsys):
    for root in ("a", "b"):
        assert npe_data(["prepare", "longtail_synth", "--data-root", str(tmp_path / root)]) == 0
    a, b = _files(tmp_path / "a" / "longtail_synth"), _files(tmp_path / "b" / "longtail_synth")
    assert len(a) == 2 * (200 + 60 + 60) + 1 and a == b
    # Second call on the same root: instant, nothing rewritten.
    marker = tmp_path / "a" / "longtail_synth" / MARKER
    before = marker.stat().st_mtime_ns
    t0 = time.perf_counter()
    assert npe_data(["prepare", "longtail_synth", "--data-root", str(tmp_path / "a")]) == 0
    assert time.perf_counter() - t0 < 0.5 and marker.stat().st_mtime_ns == before
    assert "already prepared" in capsys.readouterr().out


def test_other_seed_gives_other_data(tmp_path):
    spec = datasets.get("longtail_synth")
    a = spec.with_config(seed=0, counts=(("training", 5), ("validation", 2), ("holdout", 2)))
    b = spec.with_config(seed=1, counts=(("training", 5), ("validation", 2), ("holdout", 2)))
    a.prepare(tmp_path / "a")
    b.prepare(tmp_path / "b")
    assert _files(tmp_path / "a" / "longtail_synth") != _files(tmp_path / "b" / "longtail_synth")
    assert not spec.is_prepared(tmp_path / "a")  # marker records the configuration


def test_longtail_prior_matches_measured_pixel_frequencies(tmp_path):
    spec = datasets.get("longtail_synth")
    out = spec.prepare(tmp_path)
    info = json.loads((out / "prior.json").read_text())
    prior = np.asarray(info["prior"])
    k = len(info["classes"])
    assert 6 <= k <= 8 and info["classes"] == list(spec.class_names)
    # The true profile: pi_k ∝ r^k, most/least = 100.
    assert np.allclose(prior, exponential_prior(k, 100.0)) and abs(prior.sum() - 1) < 1e-12
    assert np.allclose(np.diff(np.log(prior)), np.log(prior[1] / prior[0]))
    assert abs(prior[0] / prior[-1] - 100) < 1e-6
    # Measure the training labels ourselves, straight from the PNGs.
    counts = np.zeros(k, dtype=np.int64)
    for f in sorted((out / "annotations" / "training").glob("*.png")):
        with Image.open(f) as im:
            counts += np.bincount(np.asarray(im).ravel(), minlength=k)[:k]
    measured = counts / counts.sum()
    assert np.allclose(measured, info["measured"]["training"], rtol=0, atol=1e-12)
    assert np.allclose(measured, prior, rtol=0.02, atol=0)  # each class within 2% of its true share
    assert 90 < measured[0] / measured[-1] < 110
    assert spec.class_pixel_counts(tmp_path).tolist() == counts.tolist() == info["pixel_counts"]["training"]
    for split in ("validation", "holdout"):
        assert np.allclose(info["measured"][split], prior, rtol=0.05, atol=0)
    # The rarest class still appears in enough images and objects to be learnable.
    present = sum(1 for f in (out / "annotations" / "training").glob("*.png")
                  if (np.asarray(Image.open(f)) == k - 1).any())
    assert present >= 20


def test_images_differ_by_class(tmp_path):
    # Class appearance must carry signal: mean colours of the classes are well apart.
    out = datasets.get("longtail_synth").prepare(tmp_path)
    k = datasets.get("longtail_synth").num_classes
    sums, n = np.zeros((k, 3)), np.zeros(k)
    for f in sorted((out / "images" / "training").glob("*.png"))[:60]:
        img = np.asarray(Image.open(f)).astype(np.float64)
        lab = np.asarray(Image.open(out / "annotations" / "training" / f.name))
        for c in range(k):
            m = lab == c
            sums[c] += img[m].sum(axis=0)
            n[c] += m.sum()
    means = sums[n > 0] / n[n > 0][:, None]
    d = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert d[np.triu_indices(len(means), 1)].min() > 25


def test_unwritable_data_root_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="preparing 'smoke' failed at"):
        datasets.get("smoke").prepare(blocker / "data")
