"""Argument types and flags the ``pcarn`` commands share: each bad value is one line."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys

from export.options import parse_size
from toolkit.atomic import atomic_path
from toolkit.errors import PcarnError


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


def at_least(minimum: int):
    """An argparse type for whole numbers of ``minimum`` or more (repeats, workers, intervals)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A value such as "-4x8" is a (bad) size to refuse by name, not an unknown option: argparse
        # reads only plain negative numbers as values, so sizes join them here.
        self._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d+x-?\d+$")

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


def emit_json(document: dict, target: str | None) -> bool:
    """``--json PATH`` writes the document there; ``--json`` or ``--json -`` prints it as the only
    stdout. Returns True when stdout is taken (no human summary then)."""
    if target is None:
        return False
    text = json.dumps(document, indent=None if target == "-" else 2)
    if target == "-":
        print(text)
        return True
    with atomic_path(target) as tmp:
        tmp.write_text(text + "\n")
    return False


def input_size(text: str | None) -> tuple[int, int] | None:
    """``--input-size HxW`` as (height, width), or None when not given."""
    if not text:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise PcarnError(str(exc)) from None


def calib_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calib",
        help="int8: folder of photos to calibrate activations on (default: data/debian-photos, "
        "else scikit-image's non-validation photos, with a note)",
    )
    parser.add_argument(
        "--int8-choices",
        default="shipped",
        help="int8: where mixed-precision choices of earlier runs are kept: shipped (default: the shipped "
        "models' choices, read only), a JSON file (read, and new choices added to it) or none (search "
        "every head again)",
    )


def choice_store(text: str):
    """``--int8-choices`` as an ``export.choice_store.ChoiceStore`` (None for ``none``), refused up
    front when the file cannot be read or written."""
    from export.choice_store import ChoiceStore
    from toolkit.atomic import check_output_folder

    if text == "none":
        return None
    if text == "shipped":
        return ChoiceStore.shipped()
    return ChoiceStore.shipped(check_output_folder(text))


def timing_options(parser: argparse.ArgumentParser, *, repeats: int, warmup: int) -> None:
    """``--threads``, ``--repeats`` and ``--warmup`` of the commands that time something."""
    parser.add_argument("--threads", type=at_least(1), default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=at_least(1), default=repeats)
    parser.add_argument("--warmup", type=at_least(0), default=warmup)


def command_line() -> str:
    """The command as typed, shell-quoted, for reports and JSON (``pcarn ...``)."""
    return "pcarn " + shlex.join(sys.argv[1:])
