"""Verified, resumable downloads and safe archive extraction, shared by every dataset module.

A source is a :class:`Source` ``(url, filename, checksum)``. ``checksum`` is ``"<algo>:<hex>"`` with
``algo`` one of ``sha256``, ``md5``, ``sha1``; a hex shorter than the full digest (at least 8 digits) is
a prefix check, which is how released MMSeg checkpoints carry their hash in the file name.

Behaviour of :func:`fetch_all` (what every ``prepare`` relies on):

- A file already at ``<dest>/<filename>`` (downloaded earlier or placed there by hand) is verified and
  used; one that fails verification is renamed to ``<filename>.bad-<timestamp>``, reported on stderr,
  and never used.
- A download goes to ``<filename>.part``; an interrupted one is resumed with an HTTP ``Range`` request,
  retried with exponential backoff, shown with a progress bar on a terminal, verified, and only then
  renamed to ``<filename>``.
- ``mirror`` (flag ``--mirror`` / ``$NPE_MIRROR``) fetches ``<mirror>/<filename>`` instead of the home
  URL; the kit's checksums still apply.
- ``offline=True`` never touches the network. Whatever cannot be had (offline, host down, blocked) ends
  in one :class:`~npe.errors.UserError` whose first line is a summary and whose following lines list
  each file, where it comes from, and the exact path to put it.
- ``gdrive:<file id>`` sources are fetched with ``gdown``.

Tuning by environment (tests use short values): ``NPE_DOWNLOAD_RETRIES`` (attempts after the first,
default 4), ``NPE_DOWNLOAD_BACKOFF`` (first wait in seconds, doubled each retry, default 2),
``NPE_DOWNLOAD_TIMEOUT`` (socket timeout in seconds, default 60).
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import platform
import socket
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable, NamedTuple, Sequence

from npe.errors import UserError
from npe.locking import tidy_lock
from npe.logs import NOTE

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "npe-kit-downloader/1"
_ALGOS = {"sha256": 64, "md5": 32, "sha1": 40}


class Source(NamedTuple):
    """One file the kit fetches: home URL (or ``gdrive:<id>``), local file name, ``algo:hex`` checksum."""

    url: str
    filename: str
    checksum: str


class Unreachable(Exception):
    """The file could not be obtained from its source (network down, host refused, HTTP error)."""


# --------------------------------------------------------------------------------------------- checksums
def parse_checksum(checksum: str) -> tuple[str, str]:
    """Split ``"algo:hex"`` (or a bare hex of a known digest length) into ``(algo, lowercase hex)``."""
    text = checksum.strip().lower()
    if ":" in text:
        algo, _, hexpart = text.partition(":")
    else:
        algo = {64: "sha256", 32: "md5", 40: "sha1"}.get(len(text), "sha256")
        hexpart = text
    if algo not in _ALGOS:
        raise UserError(f"unknown checksum algorithm {algo!r} in {checksum!r}; use sha256:, md5: or sha1:")
    if not hexpart or any(c not in "0123456789abcdef" for c in hexpart):
        raise UserError(f"checksum {checksum!r} is not hexadecimal; expected e.g. sha256:<64 hex digits>")
    if len(hexpart) > _ALGOS[algo] or len(hexpart) < 8:
        raise UserError(f"checksum {checksum!r} has {len(hexpart)} hex digits; {algo} needs 8 to {_ALGOS[algo]}")
    return algo, hexpart


def file_digest(path: Path, algo: str) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def checksum_matches(path: Path, checksum: str) -> tuple[bool, str]:
    """Whether ``path`` matches ``checksum`` (full digest or prefix); also returns the actual digest."""
    algo, expected = parse_checksum(checksum)
    actual = file_digest(path, algo)
    return actual.startswith(expected), f"{algo}:{actual}"


def move_aside(path: Path, reason: str) -> Path:
    """Rename a file that failed verification to ``<name>.bad-<timestamp>`` and say so on stderr."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.bad-{stamp}-{n}")
        n += 1
    path.rename(target)
    log.warning('%s %s; moved aside to %s (not used)', path, reason, target.name)
    return target


# --------------------------------------------------------------------------------------------- settings
def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"${name}={raw!r} is not a number") from None
    if value < 0:
        raise UserError(f"${name}={raw!r} must not be negative")
    return value


def settings() -> tuple[int, float, float]:
    """``(retries, first backoff seconds, socket timeout seconds)`` from the environment."""
    return (
        int(_env_number("NPE_DOWNLOAD_RETRIES", 4)),
        _env_number("NPE_DOWNLOAD_BACKOFF", 2.0),
        _env_number("NPE_DOWNLOAD_TIMEOUT", 60.0) or 60.0,
    )


def source_url(source: Source, mirror: str | None) -> str:
    """Where ``source`` is fetched from: ``<mirror>/<filename>`` when a mirror is set, else its home."""
    if mirror:
        return mirror.rstrip("/") + "/" + urllib.parse.quote(source.filename)
    return source.url


def display_url(url: str) -> str:
    """A URL a person can open in a browser (``gdrive:<id>`` becomes Google Drive's download link)."""
    if url.startswith("gdrive:"):
        return f"https://drive.google.com/uc?id={url[len('gdrive:'):]}"
    return url


# --------------------------------------------------------------------------------------------- HTTP
class _Retryable(Exception):
    pass


class _Quick(_Retryable):
    """Refused connection or a stalled server: retried once, at once, then given up (retrying a port
    nobody listens on, or a server that sends nothing, with back-off only delays the message)."""


def _progress(total: int | None, initial: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)


def _http_attempt(url: str, part: Path, timeout: float, desc: str) -> None:
    """One attempt: (re)start or resume ``part`` from ``url``. Raises _Retryable / Unreachable."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Range past the end: the part may already be whole; the caller's checksum decides.
            exc.close()
            return
        retry = exc.code >= 500 or exc.code in (408, 429)
        exc.close()
        raise (_Retryable if retry else Unreachable)(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            raise _Quick("connection refused (nothing listens at that address)") from None
        if isinstance(exc.reason, TimeoutError):
            raise _Quick(f"no answer within {timeout:g} s (stalled server; NPE_DOWNLOAD_TIMEOUT)") from None
        if isinstance(exc.reason, socket.gaierror):
            # Name resolution failed: typical of an offline or air-gapped machine; retrying only delays
            # the message that says what to fetch by hand.
            raise Unreachable(f"cannot resolve host ({exc.reason})") from None
        raise _Retryable(str(exc.reason)) from None
    except ConnectionRefusedError:
        raise _Quick("connection refused (nothing listens at that address)") from None
    except TimeoutError:
        raise _Quick(f"no answer within {timeout:g} s (stalled server; NPE_DOWNLOAD_TIMEOUT)") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Retryable(str(exc) or type(exc).__name__) from None

    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        if status == 206:
            content_range = response.headers.get("Content-Range", "")
            start = content_range.replace("bytes", "").strip().split("-")[0]
            if not start.isdigit() or int(start) != offset:
                # The server resumed from somewhere else: start over rather than splice wrong bytes.
                part.unlink(missing_ok=True)
                raise _Retryable(f"server answered Range {offset}- with Content-Range {content_range!r}")
            mode, done = "ab", offset
        elif status == 200:
            mode, done = "wb", 0  # server ignored Range (or none was sent): full body
        else:
            raise Unreachable(f"unexpected HTTP status {status}")
        total = done + expected if expected is not None else None
        received = 0
        try:
            with open(part, mode) as out, _progress(total, done, desc) as bar:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
        except TimeoutError:
            raise _Quick(f"no data for {timeout:g} s after {done + received} bytes (stalled server; "
                         "NPE_DOWNLOAD_TIMEOUT)") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Retryable(f"connection lost after {done + received} bytes ({type(exc).__name__})") from None
        if expected is not None and received < expected:
            raise _Retryable(f"connection closed after {done + received} of {total} bytes")


def _download_http(url: str, part: Path, desc: str) -> None:
    retries, backoff, timeout = settings()
    last = ""
    quick_tries = 0
    for attempt in range(retries + 1):
        try:
            _http_attempt(url, part, timeout, desc)
            return
        except _Retryable as exc:
            last = str(exc)
            if isinstance(exc, _Quick) and quick_tries:
                break
            quick_tries += isinstance(exc, _Quick)
            if attempt < retries:
                wait = 0 if isinstance(exc, _Quick) else backoff * (2 ** attempt)
                when = f"in {wait:g} s" if wait else "now"
                log.warning('%s: %s; retrying %s (%d/%d)', desc, last, when, attempt + 1, retries, extra=NOTE)
                time.sleep(wait)
    raise Unreachable(last)


def _download_gdrive(file_id: str, part: Path, desc: str) -> None:
    try:
        import gdown
    except ImportError:
        raise UserError("gdown is needed for gdrive: sources; install it with `pip install gdown`") from None
    try:
        result = gdown.download(id=file_id, output=str(part), quiet=not sys.stderr.isatty(), resume=True)
    except Exception as exc:  # gdown raises requests' and its own errors; all mean "could not fetch"
        raise Unreachable(f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    if not result or not part.exists():
        raise Unreachable("gdown could not download the file")


def _download(url: str, part: Path, desc: str) -> None:
    if url.startswith("gdrive:"):
        _download_gdrive(url[len("gdrive:"):], part, desc)
    elif url.startswith(("http://", "https://")):
        _download_http(url, part, desc)
    else:
        raise UserError(f"cannot download {url!r}: only http(s):// and gdrive:<id> sources are supported")


# --------------------------------------------------------------------------------------------- fetch
def _verified_existing(path: Path, checksum: str) -> bool:
    """True if ``path`` exists and verifies; a file that fails is moved aside."""
    if not path.is_file():
        return False
    ok, actual = checksum_matches(path, checksum)
    if ok:
        return True
    move_aside(path, f"fails verification (expected {checksum}, got {actual})")
    return False


def fetch(source: Source, dest_dir: Path, mirror: str | None = None, offline: bool = False) -> Path:
    """Return the verified local copy of one source (see :func:`fetch_all`)."""
    return fetch_all([source], dest_dir, mirror=mirror, offline=offline, what=source.filename)[0]


def fetch_all(sources: Sequence[Source], dest_dir: Path, mirror: str | None = None, offline: bool = False,
              what: str = "") -> list[Path]:
    """Verified local paths of all ``sources`` under ``dest_dir``, downloading what is missing.

    Raises one :class:`UserError` listing every file that could not be had (offline or unreachable),
    or naming the file whose download failed verification.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    for s in sources:
        parse_checksum(s.checksum)  # a malformed checksum is a programming/recipe error: say so first
    paths: list[Path] = []
    missing: list[tuple[Source, str, str]] = []
    for source in sources:
        final = dest_dir / source.filename
        paths.append(final)
        if _verified_existing(final, source.checksum):
            continue
        url = source_url(source, mirror)
        if offline:
            missing.append((source, url, "offline"))
            continue
        part = final.with_name(final.name + ".part")
        with tidy_lock(final):  # two processes never write the same .part file
            if _verified_existing(final, source.checksum):  # another process finished it meanwhile
                continue
            resumed = part.exists() and part.stat().st_size > 0
            try:
                _download(url, part, source.filename)
                ok, actual = checksum_matches(part, source.checksum)
                if not ok and resumed:
                    # The kept .part may belong to an older version of the file: one clean retry.
                    move_aside(part, "failed verification after resuming an earlier partial download")
                    _download(url, part, source.filename)
                    ok, actual = checksum_matches(part, source.checksum)
            except Unreachable as exc:
                missing.append((source, url, str(exc)))
                continue
            if not ok:
                bad = move_aside(part, "failed verification")
                raise UserError(
                    f"{source.filename} downloaded from {display_url(url)} does not match its checksum "
                    f"(expected {source.checksum}, got {actual}); moved aside to {bad}; nothing was prepared "
                    f"- check the source or mirror, then run again")
            part.replace(final)
    if missing:
        raise UserError(offline_message(missing, dest_dir, mirror, offline, what))
    return paths


def offline_message(missing: Iterable[tuple[Source, str, str]], dest_dir: Path, mirror: str | None,
                    offline: bool, what: str = "") -> str:
    """The one message for files that could not be fetched: summary line, then file / from / put at."""
    missing = list(missing)
    reasons = sorted({reason if len(reason) <= 120 else reason[:117] + "..." for _, _, reason in missing})
    why = "offline mode (--offline)" if offline else "source unreachable: " + "; ".join(reasons)
    subject = f" for {what}" if what else ""
    lines = [f"cannot fetch {len(missing)} file(s){subject} ({why}); download each file below and put it "
             f"at the path shown (it is verified by checksum), then run again:"]
    for source, url, _ in missing:
        lines.append(f"  {source.filename}")
        lines.append(f"    from:   {display_url(url)}")
        if mirror and url != source.url:
            lines.append(f"    (home:  {display_url(source.url)})")
        lines.append(f"    put at: {(dest_dir / source.filename).resolve()}")
        lines.append(f"    {source.checksum.split(':')[0] if ':' in source.checksum else 'checksum'}: "
                     f"{source.checksum.split(':')[-1]}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- archives
# Tar members are checked by tarfile's own ``data`` extraction filter (PEP 706: Python >= 3.10.12 /
# 3.11.4, or a distribution's backport): no absolute paths, nothing outside the target through '..' or
# links, no device files. Its errors become one clear line here. A Python without the filters (Debian
# bookworm's 3.11.2, the CPU image's) runs everything else; unpacking a tar there is one clear error.
HAS_TAR_FILTERS = hasattr(tarfile, "data_filter")
_REFUSALS = tuple((getattr(tarfile, kind), text) for kind, text in (
    ("AbsoluteLinkError", "is a link to an absolute path"),
    ("LinkOutsideDestinationError", "is a link that points outside the target folder"),
    ("AbsolutePathError", "has an absolute path"),
    ("OutsideDestinationError", "points outside the target folder ('..')"),
    ("SpecialFileError", "is a device, FIFO or other special file"),
) if hasattr(tarfile, kind))


def _refusal(archive: Path, name: str, reason: str) -> UserError:
    return UserError(f"refusing {archive.name}: member {name!r} {reason}; the archive is not safe to unpack - "
                     f"check where it came from")


def _data_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's ``data`` filter, except that an absolute member name is refused, not made relative."""
    if member.name.startswith("/") or os.path.isabs(member.name):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, dest)


def check_tar_members(archive: Path, tar: tarfile.TarFile, target: Path | None = None) -> list[tarfile.TarInfo]:
    """All members of an open tar, each passed through the ``data`` filter for ``target`` (a stand-in
    folder when the caller only reads members): a :class:`UserError` names the first unsafe one."""
    if not HAS_TAR_FILTERS:
        raise UserError(f"cannot unpack {archive.name} safely: this Python ({platform.python_version()}) has no "
                        "tarfile extraction filters (PEP 706: Python >= 3.10.12 or >= 3.11.4); unpack it "
                        "with a newer Python, e.g. the kit's .venv or the CUDA image")
    members = tar.getmembers()
    dest = str(target if target is not None else Path("/nonexistent-npe-target"))
    for m in members:
        try:
            _data_filter(m, dest)
        except tarfile.FilterError as exc:
            reason = next((text for kind, text in _REFUSALS if isinstance(exc, kind)), str(exc))
            raise _refusal(archive, m.name, reason) from None
    return members


def check_zip_members(archive: Path, zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """All members of an open zip, refusing absolute names and '..' (``zipfile`` would silently rename
    them; an archive that carries them is not what the kit expects)."""
    infos = zf.infolist()
    for info in infos:
        name = info.filename.replace("\\", "/")
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            raise _refusal(archive, info.filename, "has an absolute path")
        if ".." in PurePosixPath(name).parts:
            raise _refusal(archive, info.filename, "points outside the target folder ('..')")
    return infos


def corrupt_archive_error(archive: Path, exc: BaseException) -> UserError:
    """The one-line error for an archive that cannot be read to the end."""
    return UserError(f"{archive.name} is truncated or corrupt ({type(exc).__name__}: {exc}); delete "
                     f"{archive} and run again to fetch a fresh copy")


CORRUPT_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError)


def safe_extract(archive: Path, target: Path) -> None:
    """Unpack a tar (any compression) or zip into ``target`` after checking every member.

    Absolute paths, ``..`` components, links pointing outside ``target`` and special files are refused
    with a :class:`UserError` before anything is written. A truncated or corrupt archive also ends in a
    :class:`UserError`; the caller works in a temporary folder, so nothing half-written looks ready.
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                check_zip_members(archive, zf)
                zf.extractall(target)  # zipfile checks each CRC on read
        else:
            with tarfile.open(archive, "r:*") as tar:
                check_tar_members(archive, tar, target)
                tar.extractall(target, filter=_data_filter)
    except UserError:
        raise
    except CORRUPT_ERRORS as exc:
        raise corrupt_archive_error(archive, exc) from None
