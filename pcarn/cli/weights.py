"""``pcarn import`` and ``pcarn fetch``: the authors' released checkpoints, found or converted."""

from __future__ import annotations

import argparse


def add_parsers(sub) -> None:
    imp = sub.add_parser("import", help="convert an authors' .pth into our .safetensors format")
    imp.add_argument("source")
    imp.add_argument("output")
    imp.set_defaults(func=run_import)
    fetch = sub.add_parser("fetch", help="download (or find) an authors' released checkpoint by name")
    fetch.add_argument("name")
    fetch.set_defaults(func=run_fetch)


def run_import(args: argparse.Namespace) -> int:
    from toolkit.weights.authors import load_authors_checkpoint
    from toolkit.weights.checkpoint import save_checkpoint

    model, source = load_authors_checkpoint(args.source)
    metadata = save_checkpoint(model, args.output, source=source)
    print(f"{args.source} ({source['variant']}, {metadata['params']:,} parameters) -> {args.output}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from toolkit.weights.registry import fetch_official

    print(fetch_official(args.name))
    return 0
