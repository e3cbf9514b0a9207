"""Initial checkpoints named by recipes: fetched once, verified, cached under ``<data root>/checkpoints``.

A checkpoint source is an ``http(s)://`` URL or ``gdrive:<file id>`` (fetched with gdown). It is verified
against the checksum given by the recipe (``sha256:...``, ``md5:...`` or a bare hex digest) or, when none
is given, against the sha256 prefix OpenMMLab puts in released file names (``..._20201223_191051-7d77e78b.pth``:
the 8 hex digits before ``.pth`` are the start of the file's sha256). A source with neither is refused.
"""
from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

from npe.errors import UserError
from npe.paths import data_root as _data_root
from npe.paths import mirror as _mirror

from .download import Source, fetch_all, parse_checksum

OPENMMLAB_PREFIX = "https://download.openmmlab.com/mmsegmentation/v0.5/"

#: Released MMSeg checkpoints of docs/datasets.md: base config (MMSeg 1.x) -> path under OPENMMLAB_PREFIX.
KNOWN = {
    "unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py":
        "unet/fcn_unet_s5-d16_128x128_40k_stare/fcn_unet_s5-d16_128x128_40k_stare_20201223_191051-7d77e78b.pth",
    "unet/unet-s5-d16_pspnet_4xb4-40k_stare-128x128.py":
        "unet/pspnet_unet_s5-d16_128x128_40k_stare/pspnet_unet_s5-d16_128x128_40k_stare_20201227_181818-3c2923c4.pth",
    "unet/unet-s5-d16_deeplabv3_4xb4-40k_stare-128x128.py":
        "unet/deeplabv3_unet_s5-d16_128x128_40k_stare/"
        "deeplabv3_unet_s5-d16_128x128_40k_stare_20201226_094047-93dcb93c.pth",
    "pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py":
        "pspnet/pspnet_r50-d8_512x512_80k_ade20k/pspnet_r50-d8_512x512_80k_ade20k_20200615_014128-15a8b914.pth",
    "deeplabv3/deeplabv3_r50-d8_4xb4-80k_ade20k-512x512.py":
        "deeplabv3/deeplabv3_r50-d8_512x512_80k_ade20k/"
        "deeplabv3_r50-d8_512x512_80k_ade20k_20200614_185028-0bb3f844.pth",
    "upernet/upernet_r50_4xb4-80k_ade20k-512x512.py":
        "upernet/upernet_r50_512x512_80k_ade20k/upernet_r50_512x512_80k_ade20k_20200614_144127-ecc8377b.pth",
}

_NAME_HASH = re.compile(r"-([0-9a-f]{8,64})\.pth$")


def known_checkpoint_url(base_config: str) -> str | None:
    """The released checkpoint URL for an MMSeg base config name (``mmseg::`` prefix optional)."""
    key = base_config.split("::", 1)[-1]
    path = KNOWN.get(key)
    return OPENMMLAB_PREFIX + path if path else None


def checkpoint_source(source: str, checksum: str | None = None, filename: str | None = None) -> Source:
    """Turn a recipe's ``load_from`` (URL or ``gdrive:<id>``, optional checksum) into a verified Source."""
    source = source.strip()
    if source.startswith("gdrive:"):
        file_id = source[len("gdrive:"):]
        if not re.fullmatch(r"[A-Za-z0-9_-]{10,}", file_id):
            raise UserError(f"{source!r} is not a Google Drive file id; expected gdrive:<id>")
        name = filename or f"gdrive-{file_id}.pth"
    elif source.startswith(("http://", "https://")):
        name = filename or urllib.parse.unquote(Path(urllib.parse.urlparse(source).path).name)
        if not name:
            raise UserError(f"checkpoint URL {source!r} has no file name; give one")
    else:
        raise UserError(f"checkpoint source {source!r} is neither an http(s):// URL nor gdrive:<id>")
    if "/" in name or name in (".", "..") or name.startswith("."):
        raise UserError(f"checkpoint file name {name!r} is not a plain file name")
    if checksum:
        algo, hexpart = parse_checksum(checksum)
        checksum = f"{algo}:{hexpart}"
    else:
        match = _NAME_HASH.search(name)
        if not match:
            raise UserError(f"no checksum for checkpoint {source}: its file name carries no sha256 prefix "
                            f"(-xxxxxxxx.pth); give the checksum in the recipe (load_from sha256)")
        checksum = f"sha256:{match.group(1)}"
    return Source(source, name, checksum)


def checkpoint_path(source: str, checksum: str | None = None, filename: str | None = None,
                    data_root: str | os.PathLike | None = None) -> Path:
    """Where the checkpoint is (or will be) cached: ``<data root>/checkpoints/<file name>``."""
    return _data_root(data_root) / "checkpoints" / checkpoint_source(source, checksum, filename).filename


def fetch_checkpoint(source: str, checksum: str | None = None, data_root: str | os.PathLike | None = None,
                     mirror: str | None = None, offline: bool = False, filename: str | None = None) -> Path:
    """Verified local path of a checkpoint; downloads it once (resumable), later calls are instant."""
    src = checkpoint_source(source, checksum, filename)
    dest = _data_root(data_root) / "checkpoints"
    return fetch_all([src], dest, mirror=_mirror(mirror), offline=offline, what=f"checkpoint {src.filename}")[0]
