"""``pcarn export``: every scale head in every format and precision, checked and compared."""

from __future__ import annotations

import argparse
from pathlib import Path

from export.formats import DEFAULT_FORMATS, FORMATS, PRECISIONS
from export.options import OPTIONS, add_option_flags
from pcarn.cli.flags import calib_option, choice_store, emit_json, input_size, json_option, scales_type
from toolkit.errors import PcarnError, check_names


def add_parser(sub) -> None:
    ex = sub.add_parser("export", help="export scale heads to every format, checked and compared")
    ex.add_argument("--model", default="pcarn-m")
    ex.add_argument(
        "--formats",
        default=",".join(DEFAULT_FORMATS),
        help=f"comma list from {','.join(FORMATS)} (default: {','.join(DEFAULT_FORMATS)})",
    )
    ex.add_argument("--scales", type=scales_type, default=(2, 3, 4))
    ex.add_argument(
        "--precision",
        help=f"comma list from {','.join(PRECISIONS)}, each for every format asked for (default: every "
        "precision each format takes)",
    )
    ex.add_argument("--input-size", help="fixed LR input HxW (default: the LR size of a 720p output)")
    add_option_flags(ex, accepted_by())
    calib_option(ex)
    ex.add_argument(
        "--calib-samples",
        type=int,
        help="int8: how many seeded crops to calibrate on (default: toolkit.calibration's; the manifest "
        "records it)",
    )
    ex.add_argument(
        "--val",
        default="skimage",
        help="photos the int8 and w8a16 files' PSNR-Y cost is measured on: skimage (default), "
        "held-out:PHOTOS/ (the held-out photos, never trained or calibrated on) or a folder",
    )
    ex.add_argument(
        "--int8-tuned",
        help="comma list of heads tuned for int8 from this model (pcarn int8-tune): the int8 and w8a16 "
        "files of their scales are made from them, their cost still measured against the model",
    )
    ex.add_argument("--out", required=True)
    json_option(ex)
    ex.set_defaults(func=run)


def accepted_by() -> dict[str, list[str]]:
    """Each export option and the formats that take it (for the flags' help)."""
    return {name: [f.name for f in FORMATS.values() if name in f.options] for name in OPTIONS}


def run(args: argparse.Namespace) -> int:
    from export.common import check_input_size
    from export.pipeline import export_all
    from models import PCARN
    from pcarn.api import open_model
    from toolkit.calibration import DEFAULT_SAMPLES
    from toolkit.training.int8_tuning import load_tuned

    formats = check_names(args.formats.split(","), FORMATS, "format")
    precisions = (
        None if args.precision is None else check_names(args.precision.split(","), PRECISIONS, "precision")
    )
    size = input_size(args.input_size)
    choices = choice_store(args.int8_choices)
    opened = open_model(args.model, quiet=args.json == "-")
    if not isinstance(opened.model, PCARN):
        raise PcarnError(f"{args.model} is an exported file; pcarn export takes a model name or a checkpoint")
    if size is not None:
        check_input_size(opened.model, list(args.scales), size, windows=True)
    tuned = load_tuned(args.int8_tuned.split(","), opened.model) if args.int8_tuned else {}
    unused = sorted(set(tuned) - set(args.scales))
    if unused:
        raise PcarnError(f"--int8-tuned holds a x{unused[0]} head, which --scales does not export")
    manifest = export_all(
        opened.model,
        Path(args.out),
        formats=formats,
        scales=list(args.scales),
        precisions=precisions,
        input_size=size,
        provenance=opened.provenance,
        options={name: getattr(args, name) for name in OPTIONS},
        progress=args.json != "-",
        calib=args.calib,
        calib_samples=DEFAULT_SAMPLES if args.calib_samples is None else args.calib_samples,
        val=args.val,
        choices=choices,
        tuned=tuned,
    )
    if not emit_json(manifest, args.json):
        print(summary(manifest))
        print(f"manifest: {Path(args.out) / 'manifest.json'}; report: {Path(args.out) / 'report.md'}")
    return 0 if manifest["all_passed"] else 1


def summary(manifest: dict) -> str:
    """One line per file: bytes, graph checks, parity."""
    lines = [f"{'file':32} {'bytes':>10}  checks  parity"]
    for e in manifest["files"]:
        if e["status"] != "ok":
            lines.append(f"{e['path']:32} {'-':>10}  {e['status']}: {e['reason']}")
            continue
        checks = "pass" if all(c["passed"] is not False for c in e["checks"].values()) else "FAIL"
        parity = e["parity"]
        value = f"max abs {parity['max_abs']:.1e}, {parity['psnr_db']:.1f} dB" if parity["ran"] else "static"
        if parity["ran"] and e["input_layout"].endswith("uint8"):  # an image file: judged in levels
            value = f"pixels within {parity['max_levels']} level(s) of PyTorch's"
        if "quantization" in parity:  # int8: judged by the picture's loss on the validation photos
            value = f"PSNR-Y cost {parity['quantization']['cost_db']:+.3f} dB on validation photos"
        verdict = "pass" if parity["passed"] else "FAIL"
        lines.append(f"{e['path']:32} {e['bytes']:>10,}  {checks:6}  {verdict} ({value})")
    return "\n".join(lines)
