"""ADE20K SceneParsing (ADEChallengeData2016, 150 classes): download, md5-verify, unpack, count.

No conversion: the zip already has MMSeg's layout ``ADEChallengeData2016/{images,annotations}/
{training,validation}``. It is unpacked (every member checked) into a temporary folder, and the dataset
only counts as prepared when every split holds the expected number of ``.jpg`` images, each with its
``.png`` mask. Labels are 0 = other, 1..150 = classes; MMSeg's ``ADE20KDataset`` uses
``reduce_zero_label=True`` (0 -> ignore, k -> k-1), and so do :meth:`class_pixel_counts` here.

Expected counts default to 20,210 training / 2,000 validation. Override them (tests, subsets) with the
``expected_counts=(train, val)`` field of the spec (``dataclasses.replace(SPEC, expected_counts=...)``)
or the environment variable ``NPE_ADE20K_EXPECTED_COUNTS="train,val"`` (the field wins when set).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from npe.errors import UserError

from .base import DatasetSpec
from .download import Source, safe_extract

TOP = "ADEChallengeData2016"
SOURCES = (
    Source("http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip", "ADEChallengeData2016.zip",
           "md5:7328b3957e407ddae1d3cbf487f149ef"),
)
DEFAULT_COUNTS = (20210, 2000)

CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence",
    "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column",
    "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator",
    "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole", "land",
    "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name",
    "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
assert len(CLASSES) == 150


def expected_counts_from_env() -> tuple[int, int] | None:
    """``$NPE_ADE20K_EXPECTED_COUNTS`` as ``(train, val)``, or None when unset."""
    raw = os.environ.get("NPE_ADE20K_EXPECTED_COUNTS", "").strip()
    if not raw:
        return None
    try:
        train, val = (int(x) for x in raw.split(","))
    except ValueError:
        raise UserError(f"$NPE_ADE20K_EXPECTED_COUNTS={raw!r} must be two integers 'train,val', "
                        f"e.g. '20210,2000'") from None
    return train, val


@dataclasses.dataclass
class Ade20kSpec(DatasetSpec):
    """ADE20K unpacked to ``ade/ADEChallengeData2016`` with verified image/mask counts."""

    expected_counts: tuple[int, int] | None = None

    def counts_expected(self) -> tuple[int, int]:
        """(training, validation) image counts the unpacked data must have."""
        return tuple(self.expected_counts or expected_counts_from_env() or DEFAULT_COUNTS)  # type: ignore

    def _built_from(self) -> dict:
        built = super()._built_from()
        built["counts"] = list(self.counts_expected())
        return built

    def _build(self, tmp: Path, inputs: list[Path]) -> None:
        (archive,) = inputs
        unpack = tmp / "unpack"
        safe_extract(archive, unpack)
        top = unpack / TOP
        if not top.is_dir():
            raise UserError(f"{archive.name} has no top folder {TOP}/; it is not the ADE20K SceneParsing zip")
        verify_counts(top, self.counts_expected(), archive.name)
        # The final folder is `tmp` itself: move the unpacked contents up one level.
        for child in top.iterdir():
            child.rename(tmp / child.name)
        shutil.rmtree(unpack)


def verify_counts(top: Path, expected: tuple[int, int], what: str) -> None:
    """Every split has the expected number of ``.jpg`` images, each with a ``.png`` mask, and no extras."""
    for split, want in zip(("training", "validation"), expected):
        img_dir, ann_dir = top / "images" / split, top / "annotations" / split
        images = {p.stem for p in img_dir.glob("*.jpg")} if img_dir.is_dir() else set()
        masks = {p.stem for p in ann_dir.glob("*.png")} if ann_dir.is_dir() else set()
        if len(images) != want or len(masks) != want:
            raise UserError(f"{what}: {split} has {len(images)} images and {len(masks)} masks, expected "
                            f"{want} of each; the archive is incomplete - delete it and run again")
        if images != masks:
            odd = sorted(images ^ masks)[:3]
            raise UserError(f"{what}: {split} images and masks do not pair up (e.g. {', '.join(odd)})")


SPEC = Ade20kSpec(
    name="ade20k",
    folder="ade/ADEChallengeData2016",
    mmseg_type="ADE20KDataset",
    class_names=CLASSES,
    reduce_zero_label=True,
    sources=SOURCES,
    description="ADE20K SceneParsing, 20,210 training / 2,000 validation images, downloaded (923 MB)",
)
