"""``pcarn deploy``: the shipped models exported everywhere, checked, compared and timed
(the work itself: ``cli.deployment``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pcarn.cli.flags import calib_option, choice_store, scales_type, timing_options
from toolkit.atomic import check_output_dir
from toolkit.errors import PcarnError
from toolkit.weights.registry import DEPLOY_DEFAULT, SHIPPED_NAMES, known_names


def add_parser(sub) -> None:
    de = sub.add_parser("deploy", help="export the shipped models everywhere, check, compare and time them")
    de.add_argument(
        "--models",
        default=",".join(DEPLOY_DEFAULT),
        help=f"comma list of names or checkpoint files (default {','.join(DEPLOY_DEFAULT)}; "
        f"shipped: {', '.join(SHIPPED_NAMES)})",
    )
    de.add_argument("--scales", type=scales_type, default=(2, 3, 4))
    de.add_argument("--out", default="deploy")
    timing_options(de, repeats=3, warmup=1)
    calib_option(de)
    de.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pcarn.cli.deployment import deploy, render_report
    from toolkit.weights.loading import is_loadable

    check_output_dir(args.out)
    choice_store(args.int8_choices)  # refused here, before any work
    models = [m for m in args.models.split(",") if m]
    if not models:
        raise PcarnError("--models is empty; give names or checkpoint files, comma-separated")
    unknown = [m for m in models if not is_loadable(m)]
    if unknown:
        raise PcarnError(
            f"unknown model {unknown[0]!r} for --models; give checkpoint files or names "
            f"from {', '.join(known_names())}"
        )
    summary = deploy(
        models,
        Path(args.out),
        scales=list(args.scales),
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        calib=args.calib,
        int8_choices=args.int8_choices,
    )
    print(render_report(summary))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0 if summary["all_passed"] else 1
