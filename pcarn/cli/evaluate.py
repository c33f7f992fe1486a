"""``pcarn eval``: PSNR-Y, SSIM-Y and LPIPS of a model (or an exported file) and of bicubic."""

from __future__ import annotations

import argparse

from pcarn.cli.flags import emit_json, json_option, scales_type


def add_parser(sub) -> None:
    ev = sub.add_parser("eval", help="PSNR-Y, SSIM-Y and LPIPS of a model and of bicubic per scale")
    ev.add_argument("--model", default="pcarn-m", help="a model name, a checkpoint or an exported file")
    ev.add_argument(
        "--data",
        default="skimage",
        help="folder of HR images, 'skimage' (default) or 'held-out:DIR' (the held-out training photos)",
    )
    ev.add_argument(
        "--scales", type=scales_type, help="default: every head of the model (an exported file: its own)"
    )
    json_option(ev)
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pcarn.api import open_model
    from toolkit.metrics.evaluate import evaluate, validation_images

    opened = open_model(args.model, args.scales or (), quiet=args.json == "-")
    scales = args.scales or opened.scales  # default: every head the model has
    images = validation_images(args.data)
    results = evaluate(opened.model, images, scales)
    document = {
        **opened.provenance,
        "images": sorted(images),
        "convention": "PSNR-Y/SSIM-Y, BT.601 studio range, border = scale; "
        "LPIPS AlexNet-lin v0.1 on RGB, same crop, lower is better",
        "results": results,
    }
    if emit_json(document, args.json):
        return 0
    print(
        f"{opened.path} ({opened.label}) on {len(images)} images: PSNR-Y / SSIM-Y / LPIPS "
        "(AlexNet-lin v0.1, lower is better), border = scale"
    )
    print(f"{'scale':>6} {'model':>24} {'bicubic':>24} {'gain':>8}")
    for head, m in results.items():
        print(
            f"{head:>6} {m['psnr_y']:8.2f} / {m['ssim_y']:.4f} / {m['lpips']:.3f} "
            f"{m['bicubic_psnr_y']:8.2f} / {m['bicubic_ssim_y']:.4f} / {m['bicubic_lpips']:.3f} "
            f"{m['gain_db']:+7.2f}"
        )
    return 0
