"""``pcarn`` command line. Heavy packages (export, benchmarks) are imported inside their commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from toolkit.errors import PcarnError


def _cmd_info(args: argparse.Namespace) -> int:
    from benchmarks.multadds import multadds_720p
    from models import PRESETS, build_model, count_parameters, head_parameters

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
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.variant}: {report['params']:,} parameters (all heads, tied weights once)")
    for head, n in report["params_per_head"].items():
        madds = report["multadds_720p"][head]
        print(f"  {head}: {n:>10,} parameters for this head alone   {madds / 1e9:7.1f} G MultAdds at 720p")
    return 0


def _cmd_upscale(args: argparse.Namespace) -> int:
    from toolkit.atomic import check_output_folder
    from toolkit.images import compose, output_format, read_image, to_uint8, upscale_alpha, write_image
    from toolkit.inference import upscale_rgb
    from toolkit.loading import check_variant, load_any

    output_format(args.output)  # fail on a bad destination before any heavy work
    check_output_folder(args.output)
    decoded = read_image(args.input)
    model, info = load_any(args.model, quiet=args.quiet)
    check_variant(model, args.variant, info["path"])
    if args.scale not in model.config.scales:
        raise PcarnError(
            f"scale {args.scale} is not supported by this model; choose from {list(model.config.scales)}"
        )
    start = time.perf_counter()
    rgb = upscale_rgb(
        model, decoded.rgb, args.scale, tile=args.tile, overlap=args.tile_overlap, progress=not args.quiet
    )
    alpha = None if decoded.alpha is None else to_uint8(upscale_alpha(decoded.alpha, args.scale))
    path = write_image(compose(rgb, alpha, decoded.gray), args.output)
    if not args.quiet:
        h, w = decoded.rgb.shape[:2]
        seconds = time.perf_counter() - start
        print(
            f"{args.input} ({w}x{h}) -> {path} ({w * args.scale}x{h * args.scale}), "
            f"x{args.scale} with {info['variant']} from {info['path']} in {seconds:.2f}s"
        )
        if "note" in info:
            print(f"note: {info['note']}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from toolkit.authors import load_authors_checkpoint
    from toolkit.checkpoint import save_checkpoint

    model, source = load_authors_checkpoint(args.source)
    metadata = save_checkpoint(model, args.output, source=source)
    print(f"{args.source} ({source['variant']}, {metadata['params']:,} parameters) -> {args.output}")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from toolkit.registry import fetch_official

    print(fetch_official(args.name))
    return 0


def _scale(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"scale must be 2, 3 or 4, got {text!r}") from None
    if value not in (2, 3, 4):
        raise argparse.ArgumentTypeError(f"scale must be 2, 3 or 4, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line instead of a usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pcarn", description="PCARN super-resolution toolkit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    info = sub.add_parser("info", help="parameters and MultAdds at 720p of a variant")
    info.add_argument("--variant", default="pcarn-m")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_cmd_info)

    up = sub.add_parser("upscale", help="super-resolve one image")
    up.add_argument("input")
    up.add_argument("output", help="a .png, .jpg/.jpeg or .webp path")
    up.add_argument("--scale", type=_scale, default=4, help="2, 3 or 4 (default 4)")
    up.add_argument(
        "--model", default="pcarn-m", help="checkpoint path (.safetensors or authors' .pth) or name"
    )
    up.add_argument("--variant", help="fail unless the model is this variant")
    up.add_argument("--tile", type=int, default=256, help="LR tile size; 0 = whole image at once")
    up.add_argument("--tile-overlap", type=int, default=24, help="LR context pixels around each tile")
    up.add_argument("--quiet", action="store_true")
    up.set_defaults(func=_cmd_upscale)

    imp = sub.add_parser("import", help="convert an authors' .pth into our .safetensors format")
    imp.add_argument("source")
    imp.add_argument("output")
    imp.set_defaults(func=_cmd_import)

    fetch = sub.add_parser("fetch", help="download (or find) an authors' released checkpoint by name")
    fetch.add_argument("name")
    fetch.set_defaults(func=_cmd_fetch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
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
