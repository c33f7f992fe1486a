"""Argument types and shared options of the ``pcarn`` command line: each bad value is one line."""

from __future__ import annotations

import argparse


def scale_type(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"scale must be 2, 3 or 4, got {text!r}") from None
    if value not in (2, 3, 4):
        raise argparse.ArgumentTypeError(f"scale must be 2, 3 or 4, got {value}")
    return value


def scales_type(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales are comma-separated from 2,3,4, got {text!r}") from None
    if not values or any(v not in (2, 3, 4) for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"scales are comma-separated from 2,3,4, got {text!r}")
    return values


def counts_type(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers of 1 or more, got {text!r}")
    return values


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line instead of a usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write the results as JSON to PATH; without PATH (or with -) print them as the only output",
    )
