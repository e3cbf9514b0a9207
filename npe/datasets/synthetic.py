"""Built-in generated datasets: no network, deterministic from a seed, MMSeg layout.

``smoke``: 3 classes, 16/8/8 images of 64x64, made in well under a second; for pipeline checks.

``longtail_synth``: 7 classes whose pixel shares follow ``pi_k ∝ r**k`` with ``r = 100**(-1/6)``
(most / least frequent = 100). Each class is a shape family (blob, box, diamond, ...) with its own
colour and texture, so a small UNet can learn it; backgrounds vary smoothly and every image carries
noise. 200 training / 60 validation / 60 holdout images of 64x64 (holdout comes from the training
distribution and is never trained on). ``prior.json`` beside the data holds the true prior and the
measured pixel shares of every split.

How the shares are met: class ``k`` appears in ``n_k = round(N * min(1, pi_k / min_area))`` images of a
split (chosen at random), rarer classes are drawn first and stay on top, and each appearance takes
exactly ``(target pixels left) / (appearances left)`` visible pixels (the shape's size threshold is read
off the sorted distances of the still-free pixels), so every split's measured shares equal the prior up
to rounding. Background takes the rest.

Determinism: one ``numpy.random.Generator`` per split seeded from ``(seed, split index)``; PNGs written
by Pillow with fixed options and no metadata, so two runs give byte-identical files.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from npe.errors import UserError

from .base import DatasetSpec

GENERATOR_VERSION = "npe-synth/1"

# Appearance per class index: base RGB in [0, 1], texture, shape norm (1 = diamond, 2 = ellipse,
# inf = rectangle). Textures are position-based so a conv net can pick them up; colours differ as well.
_APPEARANCE = (
    ((0.46, 0.43, 0.40), "smooth", 2.0),
    ((0.20, 0.58, 0.26), "flat", 2.0),
    ((0.24, 0.34, 0.78), "hstripes", np.inf),
    ((0.82, 0.30, 0.24), "checker", 1.0),
    ((0.86, 0.76, 0.20), "vstripes", 2.0),
    ((0.62, 0.24, 0.72), "dots", np.inf),
    ((0.18, 0.78, 0.78), "diagonal", 1.0),
    ((0.96, 0.56, 0.14), "flat", 2.0),
)
PALETTE = tuple(tuple(int(round(255 * c)) for c in rgb) for rgb, _, _ in _APPEARANCE)

SMOKE_CLASSES = ("background", "blob", "box")
LONGTAIL_CLASSES = ("background", "blob", "box", "diamond", "oval", "tile", "kite")


def exponential_prior(num_classes: int, imbalance: float) -> tuple[float, ...]:
    """``pi_k ∝ r**k`` normalised, with ``pi_0 / pi_{K-1} = imbalance``."""
    r = imbalance ** (-1.0 / (num_classes - 1))
    w = np.array([r ** k for k in range(num_classes)], dtype=np.float64)
    return tuple(float(x) for x in w / w.sum())


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """Everything a generated set is made from (recorded in its marker)."""

    classes: tuple[str, ...]
    prior: tuple[float, ...]
    image_size: int
    counts: tuple[tuple[str, int], ...]  # (split, number of images)
    seed: int
    min_area: float  # smallest visible area of one appearance, as a fraction of the image
    noise: float = 0.035

    def as_dict(self) -> dict:
        """JSON-friendly form (marker, prior.json)."""
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes)
        d["prior"] = list(self.prior)
        d["counts"] = {s: n for s, n in self.counts}
        d["generator"] = GENERATOR_VERSION
        return d


def _texture(kind: str, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness modulation in [-1, 1] over the whole image for one class."""
    if kind == "flat":
        return np.zeros_like(xx)
    if kind == "hstripes":
        return np.where((yy // 3) % 2 == 0, 1.0, -1.0)
    if kind == "vstripes":
        return np.where((xx // 2) % 2 == 0, 1.0, -1.0)
    if kind == "checker":
        return np.where(((yy // 3) + (xx // 3)) % 2 == 0, 1.0, -1.0)
    if kind == "dots":
        return np.where(((yy % 4) < 2) & ((xx % 4) < 2), 1.0, -0.6)
    if kind == "diagonal":
        return np.where(((yy + xx) // 3) % 2 == 0, 1.0, -1.0)
    if kind == "smooth":
        # A random low-frequency field, different in every image (backgrounds vary).
        fy, fx = rng.uniform(0.02, 0.08, size=2)
        py, px = rng.uniform(0, 2 * np.pi, size=2)
        return np.sin(2 * np.pi * fy * yy + py) * np.cos(2 * np.pi * fx * xx + px)
    raise ValueError(kind)


def _shape_norm(size: int, p: float, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Distance of every pixel from a random centre in a rotated, stretched p-norm (smaller = inside)."""
    cy, cx = rng.uniform(0.2 * size, 0.8 * size, size=2)
    angle = rng.uniform(0, np.pi)
    aspect = rng.uniform(0.55, 1.8)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / np.sqrt(aspect)
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) * np.sqrt(aspect)
    if np.isinf(p):
        return np.maximum(np.abs(u), np.abs(v))
    return (np.abs(u) ** p + np.abs(v) ** p) ** (1.0 / p)


def _render_split(cfg: SynthConfig, n: int, rng: np.random.Generator):
    """Yield ``(image uint8 HxWx3, label uint8 HxW)`` for one split, meeting the prior's pixel totals."""
    size, k_total = cfg.image_size, len(cfg.classes)
    hw = size * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    prior = np.asarray(cfg.prior)
    # How many images each class appears in, and which.
    present = np.zeros((n, k_total), dtype=bool)
    for k in range(1, k_total):
        n_k = int(round(n * min(1.0, prior[k] / cfg.min_area)))
        n_k = max(1, min(n, n_k))
        present[rng.choice(n, size=n_k, replace=False), k] = True
    target = prior * n * hw
    painted = np.zeros(k_total, dtype=np.int64)
    left = present.sum(axis=0)
    for i in range(n):
        label = np.zeros((size, size), dtype=np.uint8)
        free = np.ones((size, size), dtype=bool)
        for k in range(k_total - 1, 0, -1):  # rarest first: later (more frequent) shapes go behind them
            if not present[i, k]:
                continue
            want = int(round((target[k] - painted[k]) / left[k]))
            left[k] -= 1
            norm = _shape_norm(size, _APPEARANCE[k][2], rng, yy, xx)
            free_norms = np.sort(norm[free])
            want = max(0, min(want, free_norms.size))
            if want == 0:
                continue
            threshold = free_norms[want - 1]
            mask = free & (norm <= threshold)
            label[mask] = k
            free &= ~mask
            painted[k] += int(mask.sum())
        yield _paint(cfg, label, rng, yy, xx), label


def _paint(cfg: SynthConfig, label: np.ndarray, rng: np.random.Generator, yy: np.ndarray,
           xx: np.ndarray) -> np.ndarray:
    image = np.zeros(label.shape + (3,), dtype=np.float64)
    for k in range(len(cfg.classes)):
        mask = label == k
        if not mask.any():
            continue
        rgb, kind, _ = _APPEARANCE[k]
        colour = np.clip(np.asarray(rgb) + rng.uniform(-0.06, 0.06, size=3), 0, 1)
        tex = _texture(kind, yy, xx, rng)
        shade = 1.0 + 0.22 * tex
        image[mask] = colour[None, :] * shade[mask][:, None]
    image += rng.normal(0.0, cfg.noise, size=image.shape)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def _save_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    # Fixed options, no text chunks: identical bytes on every run with the same zlib.
    Image.fromarray(arr).save(path, format="PNG", optimize=False, compress_level=6)


def generate(cfg: SynthConfig, out: Path) -> dict:
    """Write the dataset into ``out`` (images/, annotations/, prior.json); returns prior.json's content."""
    k_total = len(cfg.classes)
    measured: dict[str, list[float]] = {}
    pixel_counts: dict[str, list[int]] = {}
    for index, (split, n) in enumerate(cfg.counts):
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, index]))
        (out / "images" / split).mkdir(parents=True)
        (out / "annotations" / split).mkdir(parents=True)
        counts = np.zeros(k_total, dtype=np.int64)
        for i, (image, label) in enumerate(_render_split(cfg, n, rng)):
            stem = f"{split[:2]}{i:05d}"
            _save_png(image, out / "images" / split / f"{stem}.png")
            _save_png(label, out / "annotations" / split / f"{stem}.png")
            counts += np.bincount(label.ravel(), minlength=k_total)[:k_total]
        pixel_counts[split] = [int(c) for c in counts]
        measured[split] = [float(c) / float(counts.sum()) for c in counts]
    info = {
        "classes": list(cfg.classes),
        "prior": list(cfg.prior),
        "imbalance": cfg.prior[0] / cfg.prior[-1],
        "measured": measured,
        "pixel_counts": pixel_counts,
        "config": cfg.as_dict(),
    }
    (out / "prior.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


class SyntheticSpec(DatasetSpec):
    """A generated dataset; its marker records the generator version and configuration."""

    config: SynthConfig

    def __init__(self, config: SynthConfig, **kwargs) -> None:
        super().__init__(class_names=config.classes, holdout_split="holdout", **kwargs)
        self.config = config

    def _built_from(self) -> dict:
        return {"generator": self.config.as_dict()}

    def _build(self, tmp: Path, inputs: list[Path]) -> None:
        generate(self.config, tmp)

    def prior(self, data_root=None) -> dict:
        """Content of ``prior.json`` of the prepared set."""
        return json.loads((self._require_prepared(data_root) / "prior.json").read_text())

    def with_sources(self, sources) -> "SyntheticSpec":
        """Generated sets have no sources; only an empty list is accepted."""
        if list(sources):
            raise UserError(f"dataset {self.name!r} is generated locally and takes no download sources")
        return self

    def with_config(self, **changes) -> "SyntheticSpec":
        """A copy with other generator settings (e.g. ``seed=1``), prepared into the same folder name."""
        return type(self)(dataclasses.replace(self.config, **changes), name=self.name, folder=self.folder,
                          mmseg_type=self.mmseg_type, description=self.description)


SMOKE_CONFIG = SynthConfig(
    classes=SMOKE_CLASSES,
    prior=(0.6, 0.25, 0.15),
    image_size=64,
    counts=(("training", 16), ("validation", 8), ("holdout", 8)),
    seed=0,
    min_area=0.05,
)

LONGTAIL_CONFIG = SynthConfig(
    classes=LONGTAIL_CLASSES,
    prior=exponential_prior(len(LONGTAIL_CLASSES), 100.0),
    image_size=64,
    counts=(("training", 200), ("validation", 60), ("holdout", 60)),
    seed=0,
    min_area=0.04,
)

SMOKE = SyntheticSpec(SMOKE_CONFIG, name="smoke", folder="smoke", mmseg_type="SmokeDataset",
                      description="generated, 3 classes, 16/8/8 images of 64x64 (seconds)")
LONGTAIL_SYNTH = SyntheticSpec(LONGTAIL_CONFIG, name="longtail_synth", folder="longtail_synth",
                               mmseg_type="LongtailSynthDataset",
                               description="generated, 7 classes, pixel shares ~ r^k with 100x imbalance, "
                                           "200/60/60 images of 64x64")
