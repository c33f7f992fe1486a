"""``pcarn info``: parameters and MultAdds at 720p of a variant."""

from __future__ import annotations

import argparse

from pcarn.cli.flags import emit_json, json_option
from toolkit.errors import PcarnError


def add_parser(sub) -> None:
    info = sub.add_parser("info", help="parameters and MultAdds at 720p of a variant")
    info.add_argument("--variant", default="pcarn-m")
    json_option(info)
    info.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models import PRESETS, build_model, count_parameters, head_parameters
    from models.multadds import multadds_720p

    if args.variant not in PRESETS:
        raise PcarnError(f"unknown variant {args.variant!r}; choose from {', '.join(PRESETS)}")
    model = build_model(args.variant)
    report = {
        "variant": args.variant,
        "params": count_parameters(model),
        "params_per_head": head_parameters(model),
        "multadds_720p": multadds_720p(model),
        "config": model.config.to_dict(),
        "convention": "MultAdds = conv weights x output pixels for a 1280x720 output; "
        "LR pixels = 1280*720/scale^2; tied units counted every time they run",
    }
    if emit_json(report, args.json):
        return 0
    print(f"{args.variant}: {report['params']:,} parameters (all heads, tied weights once)")
    for head, n in report["params_per_head"].items():
        madds = report["multadds_720p"][head]
        print(f"  {head}: {n:>10,} parameters for this head alone   {madds / 1e9:7.1f} G MultAdds at 720p")
    return 0
