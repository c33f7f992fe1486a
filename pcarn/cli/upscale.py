"""``pcarn upscale``: super-resolve one image with a checkpoint or an exported file."""

from __future__ import annotations

import argparse
import os
import time

from export.formats import find_format
from pcarn.cli.flags import at_least, scale_type
from toolkit.atomic import check_output_folder
from toolkit.errors import PcarnError
from toolkit.images import output_format, read_image, write_image
from toolkit.tiling import DEFAULT_OVERLAP, DEFAULT_TILE


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
    up.add_argument(
        "--tile",
        type=at_least(0),
        help=f"checkpoints: LR tile size, 0 = whole image at once (default {DEFAULT_TILE}); an exported "
        "file runs in windows of its own input size",
    )
    up.add_argument(
        "--tile-overlap",
        type=at_least(0),
        help=f"checkpoints: LR context pixels around each tile (default {DEFAULT_OVERLAP})",
    )
    up.add_argument("--force", action="store_true", help="allow the output to replace the input file")
    up.add_argument("--quiet", action="store_true")
    up.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pcarn.api import open_model, upscale_decoded

    output_format(args.output)  # fail on a bad destination before any heavy work
    check_output_folder(args.output)
    if not args.force and _same_file(args.input, args.output):
        raise PcarnError(f"the output {args.output} is the input; pick another name or pass --force")
    tiling = {"tile": args.tile, "tile_overlap": args.tile_overlap}
    if find_format(args.model) is not None and any(v is not None for v in tiling.values()):
        given = " and ".join(f"--{k.replace('_', '-')}" for k, v in tiling.items() if v is not None)
        raise PcarnError(f"{given} apply to checkpoints; an exported file runs in windows of its input size")
    decoded = read_image(args.input)
    opened = open_model(args.model, (args.scale,), variant=args.variant, quiet=args.quiet)
    start = time.perf_counter()
    tile = DEFAULT_TILE if args.tile is None else args.tile
    overlap = DEFAULT_OVERLAP if args.tile_overlap is None else args.tile_overlap
    image = upscale_decoded(
        decoded, args.scale, opened.model, tile=tile, overlap=overlap, progress=not args.quiet
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


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # the output does not exist yet (or the input is missing: read_image says so)
        return False
