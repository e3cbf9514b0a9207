"""Helpers for dataset tests: a real HTTP server on 127.0.0.1 and archives in the real formats.

(A uniquely named module, not conftest, so tests can import it without clashing with other folders.)
"""
from __future__ import annotations

import gzip
import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

STARE_TRAIN = ["im0001", "im0002", "im0003", "im0004", "im0005", "im0044", "im0077", "im0081", "im0082", "im0139"]
STARE_VAL = ["im0162", "im0163", "im0235", "im0236", "im0239", "im0240", "im0255", "im0291", "im0319", "im0324"]
STARE_STEMS = STARE_TRAIN + STARE_VAL


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        srv = self.server
        rng_header = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((self.path, rng_header))
        path = self.path.split("?")[0]
        if srv.status_override:
            self.send_error(srv.status_override)
            return
        data = srv.files.get(path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng_header and not srv.ignore_range:
            spec = rng_header.replace("bytes=", "").split("-")[0]
            start = int(spec)
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        with srv.lock:
            cut = path in srv.cut_once and start == 0
            srv.cut_once.discard(path)
        if cut:
            # Send half the body, then drop the connection: the client must resume with Range.
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


class Server:
    """A ThreadingHTTPServer serving ``files`` ({'/name': bytes}) with Range support."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.files = {}
        self.httpd.requests = []
        self.httpd.cut_once = set()
        self.httpd.ignore_range = False
        self.httpd.status_override = 0
        self.httpd.lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, name: str, data: bytes) -> str:
        self.httpd.files["/" + name] = data
        return f"{self.base}/{name}"

    @property
    def requests(self):
        return self.httpd.requests

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------------------------- archive builders
def ppm(arr: np.ndarray) -> bytes:
    """Binary PPM (P6) of an HxWx3 uint8 array."""
    h, w, _ = arr.shape
    return f"P6\n{w} {h}\n255\n".encode() + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


def tar_bytes(members: list[tuple[str, bytes]], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_000_000_000
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return buf.getvalue()


def stare_content(width: int = 70, height: int = 60, seed: int = 0):
    """Source arrays of a reduced-size STARE: {stem: image}, {stem: ah map}, {stem: vk map}."""
    rng = np.random.default_rng(seed)
    images, ah, vk = {}, {}, {}
    for stem in STARE_STEMS:
        images[stem] = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        for maps in (ah, vk):
            first = rng.choice(np.array([0, 100, 127, 128, 200, 255], dtype=np.uint8), size=(height, width))
            # Other channels differ on purpose: the conversion must read the first one.
            maps[stem] = np.stack([first, 255 - first, np.full_like(first, 7)], axis=-1)
    return images, ah, vk


def stare_archives(width: int = 70, height: int = 60, seed: int = 0):
    """The three STARE tars (flat, 20 gzipped PPMs each, real member names) and their source arrays."""
    images, ah, vk = stare_content(width, height, seed)
    gz = lambda data: gzip.compress(data, mtime=0)  # noqa: E731
    tars = {
        "stare-images.tar": tar_bytes([(f"{s}.ppm.gz", gz(ppm(images[s]))) for s in STARE_STEMS]),
        "labels-ah.tar": tar_bytes([(f"{s}.ah.ppm.gz", gz(ppm(ah[s]))) for s in STARE_STEMS]),
        "labels-vk.tar": tar_bytes([(f"{s}.vk.ppm.gz", gz(ppm(vk[s]))) for s in STARE_STEMS]),
    }
    return tars, (images, ah, vk)


def ade_zip(n_train: int = 6, n_val: int = 3, size: int = 24, seed: int = 0, extra=()) -> tuple[bytes, dict]:
    """A zip with ADEChallengeData2016's layout: JPEG images, PNG masks with 0..150; returns masks too."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    masks = {}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        top = "ADEChallengeData2016/"
        zf.writestr(top + "objectInfo150.txt", "Idx\tRatio\tTrain\tVal\tName\n1\t0.1\t1\t1\twall\n")
        zf.writestr(top + "sceneCategories.txt", "ADE_train_00000001 bathroom\n")
        for split, prefix, n in (("training", "ADE_train_", n_train), ("validation", "ADE_val_", n_val)):
            for i in range(1, n + 1):
                stem = f"{prefix}{i:08d}"
                img = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                mask = rng.integers(0, 151, size=(size, size), dtype=np.uint8)
                masks[(split, stem)] = mask
                jb, mb = io.BytesIO(), io.BytesIO()
                Image.fromarray(img).save(jb, format="JPEG")
                Image.fromarray(mask).save(mb, format="PNG")
                zf.writestr(f"{top}images/{split}/{stem}.jpg", jb.getvalue())
                zf.writestr(f"{top}annotations/{split}/{stem}.png", mb.getvalue())
        for name, data in extra:
            zf.writestr(name, data)
    return buf.getvalue(), masks
