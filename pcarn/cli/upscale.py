"""``pcarn upscale``: super-resolve one image with a checkpoint or an exported file."""

from __future__ import annotations

import argparse
import time

from pcarn.api import open_model, upscale_decoded
from pcarn.cli.flags import scale_type
from toolkit.atomic import check_output_folder
from toolkit.images import output_format, read_image, write_image


def add_parser(sub) -> None:
    up = sub.add_parser("upscale", help="super-resolve one image")
    up.add_argument("input")
    up.add_argument("output", help="a .png, .jpg/.jpeg or .webp path")
    up.add_argument("--scale", type=scale_type, default=4, help="2, 3 or 4 (default 4)")
    up.add_argument(
        "--model",
        default="pcarn-m",
        help="a model name (pcarn models), a checkpoint (.safetensors or the authors' .pth) or an "
        "exported file (.onnx, .tflite, .pte)",
    )
    up.add_argument("--variant", help="fail unless the model is this variant")
    up.add_argument("--tile", type=int, default=256, help="LR tile size; 0 = whole image at once")
    up.add_argument("--tile-overlap", type=int, default=24, help="LR context pixels around each tile")
    up.add_argument("--quiet", action="store_true")
    up.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output_format(args.output)  # fail on a bad destination before any heavy work
    check_output_folder(args.output)
    decoded = read_image(args.input)
    opened = open_model(args.model, (args.scale,), variant=args.variant, quiet=args.quiet)
    start = time.perf_counter()
    image = upscale_decoded(
        decoded, args.scale, opened.model, tile=args.tile, overlap=args.tile_overlap, progress=not args.quiet
    )
    path = write_image(image, args.output)
    if not args.quiet:
        h, w = decoded.rgb.shape[:2]
        seconds = time.perf_counter() - start
        print(
            f"{args.input} ({w}x{h}) -> {path} ({w * args.scale}x{h * args.scale}), "
            f"x{args.scale} with {opened.label} from {opened.path} in {seconds:.2f}s"
        )
        if opened.note:
            print(f"note: {opened.note}")
    return 0
