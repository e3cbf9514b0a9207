"""What every dataset module shares: the :class:`DatasetSpec` contract, the marker, the atomic build.

A dataset folder is built in ``<folder>.tmp-<pid>`` next to its final place; the marker
``.npe-prepared.json`` (the checksums or generator parameters it was built from, and a timestamp) is
written last, then the folder is renamed into place. So a folder at the final path without a marker was
not made by the kit, and one with a marker is complete.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from npe.constants import __version__
from npe.errors import UserError
from npe.files import write_json_atomic
from npe.locking import tidy_lock
from npe.paths import data_root as _data_root
from npe.paths import mirror as _mirror
from npe.provenance import utc_now

from .download import Source

_PROGRESS_SECONDS = 5.0   # a counting progress line this often (and one at the end)

MARKER = ".npe-prepared.json"
COUNTS_FILE = ".npe-class-counts.json"
IGNORE_INDEX = 255


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_tmp(final: Path) -> None:
    """Remove ``<folder>.tmp-<pid>`` / ``.old-<pid>`` left by processes that no longer run."""
    parent = final.parent
    if not parent.is_dir():
        return
    for kind in ("tmp", "old"):
        for p in parent.glob(f"{final.name}.{kind}-*"):
            pid = p.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def building(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``final``, on any failure it is removed.

    The body must write the marker last. A kit-made ``final`` (with a marker) is replaced; a folder
    without a marker belongs to someone else and is left alone with an error.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(final)
    if final.exists() and not (final / MARKER).is_file():
        raise UserError(f"{final} exists but was not prepared by the kit (no {MARKER}); move or delete it, "
                        f"then run again")
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if not (tmp / MARKER).is_file():
            raise RuntimeError(f"internal: {tmp} built without a marker")
        old = None
        if final.exists():
            old = final.with_name(f"{final.name}.old-{os.getpid()}")
            final.rename(old)
        tmp.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_marker(folder: Path) -> dict | None:
    """The marker of a prepared dataset folder, or None."""
    try:
        return json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def write_marker(folder: Path, dataset: str, built_from: dict) -> None:
    """Write the marker (last step of a build): what it was built from, when, by which kit version."""
    write_json_atomic(Path(folder) / MARKER, {
        "schema": "npe-prepared/1",
        "dataset": dataset,
        "built_from": built_from,
        "prepared": utc_now(),
        "npe": __version__,
    })


def read_label(path: Path) -> np.ndarray:
    """A single-channel label image as a 2-D uint8/uint16 array."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr


def count_labels(label_files: Sequence[Path], num_classes: int, reduce_zero_label: bool,
                 label_map: dict | None = None,
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Pixels per class over ``label_files`` after MMSeg's ``LoadAnnotations`` mapping
    (``reduce_zero_label``: 0 -> ignore, k -> k-1; then ``label_map``); 255 and values past the
    classes are ignored. ``progress(n, total)`` is called every few seconds and after the last file
    (a large own dataset takes minutes)."""
    lut = np.arange(256)
    if reduce_zero_label:
        lut = np.where(lut == 0, 255, lut - 1)
    if label_map:
        mapped = lut.copy()
        for old, new in label_map.items():
            mapped[lut == int(old)] = int(new)
        lut = mapped
    total = np.zeros(256, dtype=np.int64)
    last = time.monotonic()
    for n, f in enumerate(label_files, 1):
        total += np.bincount(read_label(f).ravel(), minlength=256)[:256].astype(np.int64)
        if progress and (n == len(label_files) or time.monotonic() - last >= _PROGRESS_SECONDS):
            last = time.monotonic()
            progress(n, len(label_files))
    counts = np.zeros(num_classes, dtype=np.int64)
    for value, pixels in enumerate(total):
        target = int(lut[value])
        if 0 <= target < num_classes and pixels:
            counts[target] += pixels
    return counts


@dataclasses.dataclass
class DatasetSpec:
    """One dataset the kit knows: where it lives, how to prepare it, its classes.

    Subclasses implement :meth:`_build` (fill a temporary folder) and :meth:`_built_from` (what goes in
    the marker and must match for the dataset to count as prepared).
    """

    name: str
    folder: str
    mmseg_type: str
    class_names: tuple[str, ...]
    reduce_zero_label: bool = False
    holdout_split: str | None = None
    train_split: str = "training"
    val_split: str = "validation"
    sources: tuple[Source, ...] = ()
    description: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes after the dataset's label mapping."""
        return len(self.class_names)

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits present in the prepared folder."""
        extra = (self.holdout_split,) if self.holdout_split else ()
        return (self.train_split, self.val_split) + extra

    # ---------------------------------------------------------------- paths and state
    def path(self, data_root: str | os.PathLike | None = None) -> Path:
        """The dataset folder under the data root (``npe.paths.data_root`` resolves ``None``)."""
        return _data_root(data_root) / self.folder

    def files_to_fetch(self) -> list[Source]:
        """``[(url, filename, checksum), ...]`` the dataset is built from (empty for generated sets)."""
        return list(self.sources)

    def with_sources(self, sources: Sequence[Source | tuple[str, str, str]]) -> "DatasetSpec":
        """A copy fetching from other sources (tests, private copies); the marker records them."""
        return dataclasses.replace(self, sources=tuple(Source(*s) for s in sources))

    def _built_from(self) -> dict:
        return {"sources": [{"filename": s.filename, "checksum": s.checksum} for s in self.sources]}

    def is_prepared(self, data_root: str | os.PathLike | None = None) -> bool:
        """Whether the folder is complete and was built from exactly this spec's sources/parameters."""
        marker = read_marker(self.path(data_root))
        return bool(marker) and marker.get("built_from") == self._built_from()

    def marker(self, data_root: str | os.PathLike | None = None) -> dict | None:
        """The marker of the prepared folder (None when absent)."""
        return read_marker(self.path(data_root))

    def _require_prepared(self, data_root: str | os.PathLike | None) -> Path:
        folder = self.path(data_root)
        if read_marker(folder) is None:
            raise UserError(f"dataset {self.name!r} is not prepared under {folder.parent}; run "
                            f"`npe-data prepare {self.name}` (add --data-root if you use another)")
        return folder

    # ---------------------------------------------------------------- prepare
    def prepare(self, data_root: str | os.PathLike | None = None, mirror: str | None = None,
                offline: bool = False) -> Path:
        """Download (verified), convert and mark the dataset; instant when already prepared."""
        root = _data_root(data_root)
        final = root / self.folder
        if self.is_prepared(root):
            return final
        mirror = _mirror(mirror)
        try:
            root.mkdir(parents=True, exist_ok=True)
            # Two drivers started together: one builds, the other waits and finds it prepared (a
            # second build would swap the folder under the first one's training).
            with tidy_lock(final):
                if self.is_prepared(root):
                    return final
                inputs = self._fetch(root, mirror, offline)
                with building(final) as tmp:
                    self._build(tmp, inputs)
                    write_marker(tmp, self.name, self._built_from())
        except OSError as exc:
            # Unwritable data root, disk full, ...: a condition the user fixes, not a bug to trace.
            where = exc.filename or root
            raise UserError(f"preparing {self.name!r} failed at {where}: {exc.strerror or exc}; check space and "
                            f"permissions, or choose another data root (--data-root / $NPE_DATA_ROOT)") from None
        return final

    def _fetch(self, root: Path, mirror: str | None, offline: bool) -> list[Path]:
        from .download import fetch_all

        if not self.sources:
            return []
        return fetch_all(self.sources, root / "downloads", mirror=mirror, offline=offline, what=self.name)

    def _build(self, tmp: Path, inputs: list[Path]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- statistics
    def label_files(self, data_root: str | os.PathLike | None = None, split: str = "training") -> list[Path]:
        """The label files MMSeg would read for ``split`` (sorted)."""
        folder = self._require_prepared(data_root)
        return sorted((folder / "annotations" / split).glob(f"*{self.seg_map_suffix}"))

    seg_map_suffix = ".png"

    def class_pixel_counts(self, data_root: str | os.PathLike | None = None,
                           split: str = "training") -> np.ndarray:
        """Pixels per class in ``split`` after the dataset's label mapping; cached in the folder."""
        folder = self._require_prepared(data_root)
        if split not in self.splits:
            raise UserError(f"dataset {self.name!r} has no split {split!r}; choose from {', '.join(self.splits)}")
        cache_file = folder / COUNTS_FILE
        marker = read_marker(folder) or {}
        try:
            cache = json.loads(cache_file.read_text())
            if cache.get("prepared") != marker.get("prepared"):
                cache = {}
        except (OSError, ValueError):
            cache = {}
        cached = cache.get("counts", {}).get(split)
        if cached is not None and len(cached) == self.num_classes:
            return np.asarray(cached, dtype=np.int64)
        files = self.label_files(data_root, split)
        if not files:
            raise UserError(f"no label files in {folder / 'annotations' / split}; prepare {self.name!r} again")
        counts = count_labels(files, self.num_classes, self.reduce_zero_label)
        cache.setdefault("counts", {})[split] = [int(c) for c in counts]
        cache["prepared"] = marker.get("prepared")
        cache["classes"] = list(self.class_names)
        with contextlib.suppress(OSError):  # a read-only data root still answers, just uncached
            write_json_atomic(cache_file, cache)
        return counts

