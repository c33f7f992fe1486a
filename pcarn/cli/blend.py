"""``pcarn blend``: a checkpoint between two of the same network (a perception-distortion knob)."""

from __future__ import annotations

import argparse

from toolkit.errors import PcarnError


def add_parser(sub) -> None:
    bl = sub.add_parser(
        "blend",
        help="interpolate the weights of two checkpoints of one network (0 = the first, 1 = the second)",
    )
    bl.add_argument("model_a", help="name or checkpoint, e.g. pcarn-m (PSNR-oriented)")
    bl.add_argument("model_b", help="name or checkpoint of the same variant, e.g. pcarn-m-gan")
    bl.add_argument("--alpha", type=float, required=True, help="0 = MODEL_A, 1 = MODEL_B")
    bl.add_argument("--out", required=True, help="the blended .safetensors checkpoint")
    bl.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from toolkit.weights.blend import blend_models
    from toolkit.weights.checkpoint import save_checkpoint
    from toolkit.weights.loading import load_any

    if not args.out.endswith(".safetensors"):
        raise PcarnError(f"--out must end in .safetensors, got {args.out}")
    a, b = load_any(args.model_a, quiet=True), load_any(args.model_b, quiet=True)
    model, record = blend_models(a, b, args.alpha)
    save_checkpoint(model, args.out, source=record)
    print(f"{args.out}: {1 - args.alpha:g} x {a.path} + {args.alpha:g} x {b.path} ({a.variant})")
    return 0
