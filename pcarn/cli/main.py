"""``pcarn``: the commands put together, and the promise that every failure is one line."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from pcarn.cli import (
    bench,
    blend,
    deploy,
    evaluate,
    export,
    info,
    int8_tune,
    models,
    profile,
    ship,
    train,
    upscale,
    weights,
)
from pcarn.cli.flags import OneLineParser
from toolkit.atomic import check_output_folder, scratch_tempdir
from toolkit.errors import PcarnError
from toolkit.provenance import toolkit_version
from toolkit.weights.registry import cache_dir


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pcarn", description="PCARN super-resolution toolkit")
    parser.add_argument("--version", action="version", version=f"%(prog)s {toolkit_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for command in (
        info,
        models,
        upscale,
        train,
        evaluate,
        ship,
        blend,
        int8_tune,
        export,
        bench,
        deploy,
        profile,
    ):
        command.add_parser(sub)
    weights.add_parsers(sub)
    return parser


@contextlib.contextmanager
def terminate_unwinds() -> Iterator[None]:
    """SIGTERM (``kill``, job runners) ends the command like an exception, exit code 143, so the
    scratch folder and half-written files are removed; by default it stops the process where it
    stands and leaves them behind (a stopped ``pcarn train`` left its ``pcarn-train-*`` folder)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return

    def stop(signum: int, frame) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "json", None) not in (None, "-"):
            check_output_folder(args.json)  # before the work, not after it
        # torch keeps its compile cache under $TMPDIR and remembers the path for the process: in the
        # scratch folder it would come back after the folder is removed; a cache belongs in the cache
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "torchinductor"))
        with terminate_unwinds(), scratch_tempdir(f"pcarn-{args.command}-"):
            return args.func(args)
    except PcarnError as exc:
        print(f"pcarn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pcarn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the promise is one line, never a traceback; PCARN_DEBUG shows it
        if os.environ.get("PCARN_DEBUG"):
            raise
        print(
            f"pcarn {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(set PCARN_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
