"""STARE retinal vessels (2 classes) from the three original archives.

Each archive is a flat tar of 20 gzipped PPMs. The conversion follows MMSegmentation's semantics so
results compare with its model zoo: members sorted by name, the first 10 are ``training`` and the last
10 ``validation``; images become ``images/<split>/imNNNN.png``; each label map's first channel is
integer-divided by 128 (vessel 255 -> 1) and written as a single-channel
``annotations/<split>/imNNNN.ah.png`` / ``imNNNN.vk.png``. MMSeg's ``STAREDataset`` reads the ``.ah``
labels; the ``.vk`` ones sit beside them.
"""
from __future__ import annotations

import gzip
import io
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from npe.errors import UserError

from .base import DatasetSpec
from .download import CORRUPT_ERRORS, Source, check_tar_members, corrupt_archive_error

BASE_URL = "http://cecas.clemson.edu/~ahoover/stare/probing/"
SOURCES = (
    Source(BASE_URL + "stare-images.tar", "stare-images.tar",
           "sha256:5f7b509b6067cad4f1be84933145d783de9ec087b3eaaf4db0103dd0144dd433"),
    Source(BASE_URL + "labels-ah.tar", "labels-ah.tar",
           "sha256:ebf2f1e17ca955f24579d9edd990e2dae79a5c82def69f0985d8e24f826ddd2f"),
    Source(BASE_URL + "labels-vk.tar", "labels-vk.tar",
           "sha256:47474a701536b0cfdb369fdce012be36141e9f44d80387f0179446b5cb0f5576"),
)
MEMBERS_PER_ARCHIVE = 20
N_TRAIN = 10
# Member name pattern per archive role; the role is taken from the position in the source list.
_PATTERNS = {
    "image": re.compile(r"^(im\d{4})\.ppm\.gz$"),
    "ah": re.compile(r"^(im\d{4})\.ah\.ppm\.gz$"),
    "vk": re.compile(r"^(im\d{4})\.vk\.ppm\.gz$"),
}
_ROLES = ("image", "ah", "vk")


def _read_archive(archive: Path, role: str) -> dict[str, bytes]:
    """``{stem: decompressed PPM bytes}`` of one STARE tar, after checking its structure."""
    pattern = _PATTERNS[role]
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:") as tar:
            members = check_tar_members(archive, tar)
            files = [m for m in members if not m.isdir()]
            if len(files) != MEMBERS_PER_ARCHIVE:
                raise UserError(f"{archive.name} has {len(files)} members, expected {MEMBERS_PER_ARCHIVE} "
                                f"(a STARE archive is a flat tar of 20 .ppm.gz files); fetch it again")
            for m in files:
                base = PurePosixPath(m.name.replace("\\", "/")).name
                match = pattern.match(base)
                if not m.isfile() or not match:
                    raise UserError(f"{archive.name}: unexpected member {m.name!r} (expected names like "
                                    f"{pattern.pattern.strip('^$').replace(chr(92), '')}); fetch it again")
                fh = tar.extractfile(m)
                assert fh is not None
                with fh:
                    out[match.group(1)] = gzip.decompress(fh.read())
    except UserError:
        raise
    except (*CORRUPT_ERRORS, zlib.error) as exc:
        raise corrupt_archive_error(archive, exc) from None
    return out


def _decode_ppm(raw: bytes, what: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as im:
            if im.format not in ("PPM",):
                raise UserError(f"{what} is {im.format or 'not an image'}, expected a PPM; fetch it again")
            return np.asarray(im)
    except UserError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{what} is truncated or not a readable PPM ({exc}); fetch the archive again") from None


def label_from_map(arr: np.ndarray) -> np.ndarray:
    """STARE vessel map -> class indices: first channel integer-divided by 128 (0/255 -> 0/1)."""
    if arr.ndim == 3:
        arr = arr[..., 0]
    return (arr.astype(np.uint16) // 128).astype(np.uint8)


def _save_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path, format="PNG")


class StareSpec(DatasetSpec):
    """STARE with MMSeg's layout: ``STARE/{images,annotations}/{training,validation}``."""

    seg_map_suffix = ".ah.png"

    def _build(self, tmp: Path, inputs: list[Path]) -> None:
        if len(inputs) != 3:
            raise UserError(f"STARE needs 3 archives (images, labels-ah, labels-vk), got {len(inputs)}")
        parts = {role: _read_archive(path, role) for role, path in zip(_ROLES, inputs)}
        stems = sorted(parts["image"])
        for role in ("ah", "vk"):
            if sorted(parts[role]) != stems:
                raise UserError(f"{inputs[_ROLES.index(role)].name} names other images than "
                                f"{inputs[0].name}; the archives do not belong together")
        split_of = {stem: ("training" if i < N_TRAIN else "validation") for i, stem in enumerate(stems)}
        for sub in ("images", "annotations"):
            for split in ("training", "validation"):
                (tmp / sub / split).mkdir(parents=True)
        for stem in stems:
            split = split_of[stem]
            image = _decode_ppm(parts["image"][stem], f"{stem}.ppm in {inputs[0].name}")
            if image.ndim == 2:
                image = np.stack([image] * 3, axis=-1)
            _save_png(np.ascontiguousarray(image[..., :3]).astype(np.uint8), tmp / "images" / split / f"{stem}.png")
            for role in ("ah", "vk"):
                archive_name = inputs[_ROLES.index(role)].name
                label_map = _decode_ppm(parts[role][stem], f"{stem}.{role}.ppm in {archive_name}")
                if label_map.shape[:2] != image.shape[:2]:
                    raise UserError(f"{stem}.{role}.ppm is {label_map.shape[1]}x{label_map.shape[0]} but the "
                                    f"image is {image.shape[1]}x{image.shape[0]}; the archives are corrupt")
                _save_png(label_from_map(label_map), tmp / "annotations" / split / f"{stem}.{role}.png")


SPEC = StareSpec(
    name="stare",
    folder="STARE",
    mmseg_type="STAREDataset",
    class_names=("background", "vessel"),
    sources=SOURCES,
    description="STARE retinal vessels, 20 images (10 training / 10 validation), downloaded",
)
