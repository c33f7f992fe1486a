"""Core ML int8 quality where Core ML cannot run: the cost of the program's PyTorch reference.

An int8 ``.mlpackage`` is converted op for op from a calibrated PyTorch graph
(``export.coreml.int8.quantized_head``: int8 weights, quantize/dequantize pairs on the activations).
Core ML exists only on macOS, so the export judges the program by its ops and weights; this runs the
graph it was converted from, in float32 between the pairs (devices compute float16 there), through
the file's windows on validation photos, against the fp32 head: the same PSNR-Y cost the other
formats' int8 files report, for the program before conversion.

    python -m benchmarks.coreml_int8 --model pcarn-m --input-size 96x128 --calib PHOTOS/ \\
        --val held-out:PHOTOS/ --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from export.common import DeployHead, default_input_size
from export.coreml.int8 import chosen_float, quantized_head
from export.mixed import selection_of
from export.options import INT8_BUDGET_DB, parse_size
from export.quant_cost import METRICS, WindowedHead
from toolkit.calibration import DEFAULT_SAMPLES, calibration_set
from toolkit.errors import PcarnError
from toolkit.metrics.evaluate import evaluate, validation_images
from toolkit.weights.loading import load_any


def reference_costs(
    net: torch.nn.Module,
    model: str,
    scales: tuple[int, ...],
    input_size: tuple[int, int] | None,
    calib: str | None,
    val: str,
    samples: int = DEFAULT_SAMPLES,
    budget: float = INT8_BUDGET_DB,
) -> list[dict]:
    """One row per head of ``net`` (named ``model`` in the rows): the fp32 head's and the calibrated
    int8 graph's metrics on ``val``, and the cost; the activations kept float are chosen for
    ``budget`` as ``pcarn export`` chooses them (a huge budget: plain W8A8)."""
    calibration = calibration_set(calib)
    images = validation_images(val)
    rows = []
    for scale in scales:
        head = DeployHead(net, scale).eval()
        size = input_size or default_input_size(scale)
        chosen_on = selection_of(calibration, scale, size, samples)
        choice = chosen_float(head, chosen_on, budget)
        crops = calibration.crops(scale, size, samples)
        int8 = quantized_head(head, size, crops, choice.wide, choice.float_weights)
        fp32 = evaluate(WindowedHead(head, size), images, (scale,), baseline=False)[f"x{scale}"]
        file = evaluate(WindowedHead(head, size, int8), images, (scale,), baseline=False)[f"x{scale}"]
        rows.append(
            {
                "model": model,
                "scale": scale,
                "input_size": f"{size[0]}x{size[1]}",
                "cost_db": round(fp32["psnr_y"] - file["psnr_y"], 3),
                "budget_db": budget,
                "kept": choice.summary(),
                "pytorch_fp32": {k: round(fp32[k], 4) for k in METRICS},
                "int8_reference": {k: round(file[k], 4) for k in METRICS},
                "photos": sorted(images),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--scales", default="2,3,4")
    parser.add_argument("--input-size", default=None, help="fixed LR input HxW (default: 720p output)")
    parser.add_argument("--calib", default=None, help="photo folder (default: as pcarn export)")
    parser.add_argument("--val", default="skimage", help="skimage, held-out:DIR or a folder")
    parser.add_argument("--int8-budget", type=float, default=INT8_BUDGET_DB, help="dB (1000: plain W8A8)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args(argv)
    try:
        if not args.int8_budget > 0:
            raise ValueError(f"--int8-budget must be a positive number of dB, got {args.int8_budget}")
        scales = tuple(int(s) for s in args.scales.split(","))
        size = parse_size(args.input_size) if args.input_size else None
        net = load_any(args.model, quiet=True).model
        rows = reference_costs(net, args.model, scales, size, args.calib, args.val, budget=args.int8_budget)
    except (PcarnError, ValueError) as exc:
        print(f"coreml_int8: {exc}", file=sys.stderr)
        return 2
    for row in rows:
        head = f"{row['model']} x{row['scale']} {row['input_size']}"
        print(f"{head}: cost {row['cost_db']:+.3f} dB PSNR-Y; {row['kept']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
