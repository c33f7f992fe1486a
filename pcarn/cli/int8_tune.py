"""``pcarn int8-tune``: heads fine-tuned for 8-bit rounding, made once and shipped beside a model, so
``pcarn export --int8-tuned`` makes int8 files from them without retraining."""

from __future__ import annotations

import argparse
from pathlib import Path

from pcarn.cli.flags import at_least, calib_option, command_line, scales_type
from toolkit.errors import PcarnError


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "int8-tune", help="fine-tune each head under int8 rounding (quantization-aware), for int8 exports"
    )
    parser.add_argument("--model", default="pcarn-m", help="name or checkpoint (the teacher)")
    parser.add_argument("--scales", type=scales_type, default=(2, 3, 4))
    calib_option(parser)  # the photos tuned on: the calibration photos, never the held-out ones
    parser.add_argument("--steps", type=at_least(1), default=400)
    parser.add_argument("--batch", type=at_least(1), default=8)
    parser.add_argument("--patch", type=at_least(8), default=48, help="LR crop side")
    parser.add_argument("--patches", type=at_least(1), default=2048, help="LR crops drawn from the photos")
    parser.add_argument("--lr", type=float, default=2e-5, help="Adam's; higher drifts from the model")
    parser.add_argument("--loss", default="l1", choices=["l1", "l2"], help="distance to the model's output")
    parser.add_argument(
        "--ranges",
        default="min-max",
        choices=["min-max", "moving"],
        help="activation ranges while tuning: a moving min/max, or every batch's (as export calibrates)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=at_least(1), help="torch CPU threads")
    parser.add_argument("--out", required=True, help="folder for MODEL-int8-xS.safetensors, one per head")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from models import PCARN
    from pcarn.api import open_model
    from toolkit.calibration import calibration_set
    from toolkit.training.int8_tuning import TuningPlan, save_tuned, training_patches, tune_head

    out = Path(args.out)
    if not args.lr > 0:
        raise PcarnError(f"--lr must be positive, got {args.lr}")
    if out.exists() and not out.is_dir():
        raise PcarnError(f"--out {out} exists and is not a folder")
    opened = open_model(args.model, quiet=True)
    if not isinstance(opened.model, PCARN):
        raise PcarnError(
            f"{args.model} is an exported file; pcarn int8-tune takes a model name or a checkpoint"
        )
    missing = [s for s in args.scales if s not in opened.model.config.scales]
    if missing:
        raise PcarnError(
            f"scale {missing[0]} is not in this model (it has {list(opened.model.config.scales)})"
        )
    photos = calibration_set(args.calib)
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = TuningPlan(args.steps, args.batch, args.patch, args.lr, args.seed, args.loss, args.ranges)
    name = (opened.provenance or {}).get("variant") or Path(args.model).stem
    out.mkdir(parents=True, exist_ok=True)
    for scale in args.scales:
        patches = training_patches(photos, scale, plan, args.patches)
        bar = tqdm(total=plan.steps, desc=f"int8-tune x{scale}", unit="step")

        def progress(step: int, loss: float, bar=bar) -> None:
            bar.update(1)
            bar.set_postfix_str(f"loss {loss:.2e}")

        tuned, losses = tune_head(opened.model, scale, patches, plan, progress)
        bar.close()
        record = {"photos": photos.source, "patches": args.patches, "command": command_line()}
        record["loss_first_last_50"] = [
            sum(losses[:50]) / len(losses[:50]),
            sum(losses[-50:]) / len(losses[-50:]),
        ]
        path = out / f"{name}-int8-x{scale}.safetensors"
        save_tuned(tuned, opened.model, scale, plan, record, path)
        print(f"{path}: x{scale} tuned for {plan.steps} steps on {args.patches} crops of {photos.source}")
    return 0
