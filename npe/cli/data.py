"""``npe-data``: prepare datasets and initial checkpoints under the data root, and list what is there.

    npe-data prepare NAME [NAME ...] [--data-root DIR] [--mirror URL] [--offline]
    npe-data list [--data-root DIR]
    npe-data sources NAME [--data-root DIR] [--mirror URL]
    npe-data checkpoint SOURCE [--checksum ALGO:HEX] [--data-root DIR] [--mirror URL] [--offline]

Data root: ``--data-root`` > ``$NPE_DATA_ROOT`` > ``<repo>/segmentation/data``. Mirror: ``--mirror`` >
``$NPE_MIRROR`` (every file is then fetched as ``<mirror>/<file name>``; checksums stay the kit's).
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from npe import datasets
from npe.cli.common import make_parser
from npe.errors import UserError, cli_entry
from npe.files import check_output_dir
from npe.paths import data_root as resolve_data_root
from npe.paths import mirror as resolve_mirror


def _parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "npe-data",
        "Prepare datasets and initial checkpoints under the data root, and list what is there.",
        epilog="Data root: --data-root > $NPE_DATA_ROOT > <repo>/segmentation/data. Mirror: --mirror > "
               "$NPE_MIRROR (files are fetched as <mirror>/<file name>; checksums stay the kit's).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common(p: argparse.ArgumentParser, network: bool = True) -> None:
        p.add_argument("--data-root", metavar="DIR",
                       help="data root (default: $NPE_DATA_ROOT or <repo>/segmentation/data)")
        if network:
            p.add_argument("--mirror", metavar="BASE_URL",
                           help="fetch every file as BASE_URL/<file name> instead of its home (or $NPE_MIRROR)")

    p = sub.add_parser("prepare", help="download, verify and convert datasets (instant when already done)")
    p.add_argument("names", nargs="+", metavar="NAME", help=f"dataset: {', '.join(datasets.names())}")
    common(p)
    p.add_argument("--offline", action="store_true",
                   help="never touch the network; use (and verify) files placed by hand")

    p = sub.add_parser("list", help="what is prepared, where, and when it was verified")
    common(p, network=False)

    p = sub.add_parser("sources", help="the files a dataset is built from, where from, and where they go")
    p.add_argument("name", metavar="NAME")
    common(p)

    p = sub.add_parser("checkpoint", help="fetch and verify an initial checkpoint into <data root>/checkpoints")
    p.add_argument("source", metavar="SOURCE", help="http(s) URL or gdrive:<file id>")
    p.add_argument("--checksum", metavar="ALGO:HEX",
                   help="e.g. sha256:<hex>; default: the sha256 prefix in the file name (-xxxxxxxx.pth)")
    common(p)
    p.add_argument("--offline", action="store_true", help="never touch the network")
    return parser


def _cmd_prepare(args: argparse.Namespace) -> None:
    specs = [datasets.get(name) for name in args.names]  # all names checked before any work starts
    for spec in specs:
        already = spec.is_prepared(args.data_root)
        path = spec.prepare(args.data_root, mirror=args.mirror, offline=args.offline)
        print(f"{spec.name}: {'already prepared' if already else 'prepared'} at {path}")


def _cmd_list(args: argparse.Namespace) -> None:
    root = resolve_data_root(args.data_root)
    print(f"data root: {root}")
    rows = [("NAME", "STATE", "VERIFIED", "PATH")]
    for name in datasets.names():
        spec = datasets.get(name)
        marker = spec.marker(root)
        if marker is None:
            state, when = ("incomplete" if spec.path(root).exists() else "missing"), "-"
        else:
            state = "prepared" if spec.is_prepared(root) else "stale (sources changed)"
            when = str(marker.get("prepared", "?"))
        rows.append((name, state, when, str(spec.path(root))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    ckpt_dir = root / "checkpoints"
    ckpts = sorted(p.name for p in ckpt_dir.glob("*") if p.is_file() and p.suffix in (".pth", ".pt")) \
        if ckpt_dir.is_dir() else []
    print(f"checkpoints ({ckpt_dir}): {', '.join(ckpts) if ckpts else 'none'}")


def _cmd_sources(args: argparse.Namespace) -> None:
    from npe.datasets.download import display_url, source_url

    spec = datasets.get(args.name)
    files = spec.files_to_fetch()
    if not files:
        print(f"{spec.name}: generated locally, nothing to download")
        return
    dest = resolve_data_root(args.data_root) / "downloads"
    mirror = resolve_mirror(args.mirror)
    for s in files:
        print(f"{s.filename}\n  from:     {display_url(source_url(s, mirror))}\n  put at:   {dest / s.filename}"
              f"\n  checksum: {s.checksum}")


def _cmd_checkpoint(args: argparse.Namespace) -> None:
    path = datasets.fetch_checkpoint(args.source, checksum=args.checksum, data_root=args.data_root,
                                     mirror=args.mirror, offline=args.offline)
    print(path)


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``npe-data``."""
    args = _parser().parse_args(argv)
    if args.command in ("prepare", "checkpoint"):
        check_output_dir(resolve_data_root(args.data_root), "--data-root")
    handler = {"prepare": _cmd_prepare, "list": _cmd_list, "sources": _cmd_sources,
               "checkpoint": _cmd_checkpoint}[args.command]
    try:
        handler(args)
    except KeyboardInterrupt:
        raise UserError("interrupted; partial downloads are kept as .part files and resume on the next run") \
            from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
