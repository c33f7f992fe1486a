"""The export options beyond format, scale and precision, declared once.

Each option names its flag, default and help; which formats accept it is each format's own
``ExportFormat.options``. The CLI builds its flags from this table, and ``refuse_unaccepted`` turns an
option a requested format does not take into one error before any file is written, so no file is
ever written silently without what was asked for.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from toolkit.errors import PcarnError

# precisions whose activations are calibrated and whose files are judged by their PSNR-Y cost
QUANTIZED_PRECISIONS = ("int8", "w8a16")
# what an int8 file may cost in PSNR-Y where the format can choose its precision per tensor (ONNX,
# TFLite);
# plain int8 files are judged at export.quant_cost.INT8_MAX_COST_DB
INT8_BUDGET_DB = 0.05

# the pixel-shuffle forms (``export/shuffle_forms.py`` builds them)
DEPTH_TO_SPACE, CONV_TRANSPOSE = "depth-to-space", "conv-transpose"
SHUFFLES = (DEPTH_TO_SPACE, CONV_TRANSPOSE)


@dataclass(frozen=True)
class ExportOption:
    name: str  # keyword of ``ExportFormat.export``
    flag: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()  # earlier spellings of the flag, still accepted
    type: type | None = None  # how the CLI parses a value (None: a string)
    positive: bool = False  # a number that must be above zero (the CLI and the Python API alike)
    # a switch whose default (None) depends on the format: ``off_flag`` sets it False, which every
    # format takes (it asks for what a format that lacks the switch does anyway)
    off_flag: str | None = None


OPTIONS: dict[str, ExportOption] = {
    o.name: o
    for o in (
        ExportOption(
            "dynamic",
            "--dynamic",
            False,
            "dynamic height and width (TFLite: resize the input at run time; ExecuTorch: any size up "
            "to --input-size, its memory bound; Core ML: enumerated sizes, the export size, 720p and "
            "1080p outputs and a 256x256 tile); checked at three sizes",
        ),
        ExportOption(
            "exit_at_lr",
            "--exit-at-lr",
            None,
            "the exit conv folded before the last depth-to-space (exact, fewer channels shuffled, "
            "faster): the default where a format takes it; --paper-exit keeps the paper's graph",
            off_flag="--paper-exit",
        ),
        ExportOption(
            "shuffle",
            "--shuffle",
            DEPTH_TO_SPACE,
            "pixel shuffle form: depth-to-space (what mobile execution providers map) or a one-hot "
            "grouped conv-transpose (exact; faster on ONNX Runtime's CPU provider)",
            SHUFFLES,
        ),
        ExportOption(
            "io",
            "--io",
            "tensor",
            "what the file takes and returns: tensor (float RGB in [0, 1]) or image (uint8 RGB, "
            "NHWC; scaling, clamping and rounding inside; Core ML: image input and output types)",
            ("tensor", "image"),
        ),
        ExportOption(
            "int8_budget",
            "--int8-budget",
            INT8_BUDGET_DB,
            "dB of PSNR-Y an int8 file may cost against fp32 PyTorch: the fewest activations that "
            "bring it within stay wider (ONNX: 16-bit; TFLite: float), chosen on calibration-photo crops",
            type=float,
            positive=True,
        ),
    )
}


def add_option_flags(parser: argparse.ArgumentParser, accepted_by: dict[str, list[str]]) -> None:
    """One flag per option; ``accepted_by`` (option -> format names) goes into its help."""
    for option in OPTIONS.values():
        formats = ", ".join(accepted_by.get(option.name, [])) or "none"
        help_text = f"{option.help} (formats: {formats})"
        if option.off_flag:
            parser.add_argument(
                option.flag,
                *option.aliases,
                dest=option.name,
                action="store_const",
                const=True,
                help=help_text,
            )
            parser.add_argument(
                option.off_flag,
                dest=option.name,
                action="store_const",
                const=False,
                help=f"the opposite of {option.flag} (every format)",
            )
        elif isinstance(option.default, bool):
            parser.add_argument(
                option.flag, *option.aliases, dest=option.name, action="store_true", help=help_text
            )
        else:
            parser.add_argument(
                option.flag,
                *option.aliases,
                dest=option.name,
                default=option.default,
                choices=option.choices,
                type=option.type,
                help=help_text,
            )


def chosen(values: dict[str, Any]) -> dict[str, Any]:
    """The options set away from their defaults (unknown names refused)."""
    unknown = [k for k in values if k not in OPTIONS]
    if unknown:
        raise PcarnError(f"unknown export option {unknown[0]!r}; choose from {', '.join(OPTIONS)}")
    for name, value in values.items():
        choices = OPTIONS[name].choices
        if choices and value not in choices:
            raise PcarnError(f"{OPTIONS[name].flag} {value!r}: choose from {', '.join(choices)}")
        if OPTIONS[name].positive and not (isinstance(value, int | float) and value > 0):
            raise PcarnError(f"{OPTIONS[name].flag} must be a positive number, got {value!r}")
    return {k: v for k, v in values.items() if v != OPTIONS[k].default}


def refuse_unaccepted(formats: Iterable, values: dict[str, Any]) -> dict[str, Any]:
    """The options set, or one error naming the first requested format that does not take one (a
    switch set off, such as --paper-exit, is taken by every format)."""
    options = chosen(values)
    for fmt in formats:
        for name in options:
            if OPTIONS[name].off_flag and options[name] is False:
                continue  # the switch off is what a format without it does
            if name not in fmt.options:
                raise PcarnError(
                    f"{fmt.name} does not take {OPTIONS[name].flag}; leave it out or pick formats that do"
                )
    return options


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"input size must look like HxW (e.g. 180x320), got {text!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"input size must be positive, got {text!r}")
    return h, w
