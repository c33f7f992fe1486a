"""``pcarn bench``: CPU latency at 720p across runtimes, the machine's ceiling, the paper's claims."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks.runtimes import DEFAULT_RUNTIMES, RUNTIMES, runnable
from export.formats import PRECISIONS
from export.options import OPTIONS, add_option_flags
from pcarn.cli.export import accepted_by
from pcarn.cli.flags import (
    at_least,
    command_line,
    counts_type,
    emit_json,
    input_size,
    json_option,
    scales_type,
)
from toolkit.atomic import check_output_dir
from toolkit.errors import PcarnError, check_names


def add_parser(sub) -> None:
    be = sub.add_parser(
        "bench", help="CPU latency at 720p across runtimes, the machine ceiling, the paper's claims"
    )
    be.add_argument("files", nargs="*", help="exported files to time instead of the variants")
    be.add_argument("--variants", default="pcarn,pcarn-m", help="comma list of presets")
    be.add_argument("--peers", default="srresnet", help="comma list from srresnet,rrdbnet ('' for none)")
    be.add_argument("--scales", type=scales_type, default=(2, 3, 4))
    be.add_argument(
        "--runtimes",
        help=f"comma list from {','.join(RUNTIMES)} (default: every one of {','.join(DEFAULT_RUNTIMES)} "
        "that can run here; the others say why once)",
    )
    be.add_argument(
        "--precisions",
        default="fp32,int8",
        help=f"comma list from {','.join(PRECISIONS)}: PCARN variants in the exported files of each "
        "(torch runtimes and peers: fp32)",
    )
    add_option_flags(be, accepted_by())
    be.add_argument(
        "--threads",
        type=counts_type,
        default=[os.cpu_count() or 1],
        help="comma list, e.g. 1,2 (a phone's big core, and all cores); claims use the largest",
    )
    be.add_argument(
        "--tiles",
        type=counts_type,
        default=[],
        help="square LR tile sizes (e.g. 256) timed beside 720p for the PCARN variants and for exported "
        "--dynamic files; the table gives ms per output megapixel",
    )
    be.add_argument("--repeats", type=at_least(1), default=5)
    be.add_argument("--warmup", type=at_least(0), default=1)
    be.add_argument("--input-size", help="LR HxW instead of the 720p-output size")
    json_option(be)
    be.add_argument("--report", help="write report.md and the plot into this folder")
    be.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmarks.bench import run_bench
    from benchmarks.report import table, write_report
    from export.common import check_input_size
    from models import PCARN, PRESETS

    size = input_size(args.input_size)
    if args.report:
        check_output_dir(args.report)
    files = [Path(f) for f in args.files]
    missing = [f for f in files if not f.exists()]
    if missing:
        raise PcarnError(f"file not found: {missing[0]}")
    runtimes = (
        list(RUNTIMES)
        if args.runtimes is None
        else check_names(args.runtimes.split(","), RUNTIMES, "runtime")
    )
    if args.runtimes is not None:  # asked for by name: each must run here
        for name in runtimes:
            ok, reason = runnable(name)
            if not ok:
                raise PcarnError(f"runtime {name} cannot run here: {reason}")
    if size is not None:
        for variant in args.variants.split(","):
            if variant in PRESETS:
                check_input_size(PCARN(PRESETS[variant]), list(args.scales), size, windows=False)
    report = run_bench(
        variants=args.variants.split(","),
        scales=list(args.scales),
        runtimes=runtimes,
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        peers=[p for p in args.peers.split(",") if p],
        files=files or None,
        input_size=size,
        precisions=args.precisions.split(","),
        tiles=args.tiles,
        options={name: getattr(args, name) for name in OPTIONS},
    )
    command = command_line()
    if not emit_json({**report, "command": command}, args.json):
        print(table(report))
    if args.report:
        paths = write_report(report, Path(args.report), command)
        print(f"report: {paths['report']}")
    if report["failed"]:
        print(f"pcarn bench: {report['failed']} case(s) failed; see the rows marked failed", file=sys.stderr)
        return 1
    return 0
