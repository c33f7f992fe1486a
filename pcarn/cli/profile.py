"""``pcarn profile``: per-op time of exported graphs, where a model's latency goes."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.op_profile import PROFILED, format_profile, profile, profile_variants
from pcarn.cli.flags import command_line, emit_json, json_option, scale_type, timing_options
from toolkit.errors import PcarnError


def add_parser(sub) -> None:
    pr = sub.add_parser("profile", help=f"per-op time of exported graphs ({', '.join(PROFILED)})")
    pr.add_argument("files", nargs="*", help="exported files (default: export --variants at 720p)")
    pr.add_argument("--variants", default="pcarn,pcarn-m")
    pr.add_argument("--scale", type=scale_type, default=4)
    pr.add_argument("--runtimes", default=",".join(PROFILED), help=f"comma list from {','.join(PROFILED)}")
    timing_options(pr, repeats=5, warmup=2)
    json_option(pr)
    pr.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.files:
            missing = [f for f in args.files if not Path(f).exists()]
            if missing:
                raise PcarnError(f"file not found: {missing[0]}")
            results = [profile(Path(f), args.threads, args.repeats, args.warmup) for f in args.files]
        else:
            variants = args.variants.split(",")
            results = profile_variants(
                variants, args.scale, args.runtimes.split(","), args.threads, args.repeats, args.warmup
            )
    except (ValueError, KeyError) as exc:
        raise PcarnError(str(exc).strip("'")) from None
    if not emit_json({"command": command_line(), "profiles": results}, args.json):
        print("\n\n".join(format_profile(r) for r in results))
    return 0
