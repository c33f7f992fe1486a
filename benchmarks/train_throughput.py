"""Training throughput (steps/s, patches/s) of both stages on this machine, per variant, scale and
autocast precision, and where the time of a GAN step goes.

One timed step is the trainer's own (``toolkit.training.steps.l1_step`` / ``gan_step``): forward,
losses, backward, gradient clip, Adam, channels-last on CPU; the GAN step with the multi-scale
discriminator and the offline VGG16 perceptual network, all inside autocast. Synthetic batches isolate
compute; ``--data PHOTOS`` also times the batch assembly the loader workers do. Run:

    python -m benchmarks.train_throughput --stages l1,gan --amp none,bf16 --batch 16 --patch 48 \\
        --steps 3 --warmup 1 --out benchmarks/results/train_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from models import MultiScaleDiscriminator, build_model
from toolkit.training.perceptual import load_vgg16
from toolkit.training.recipes import RECIPES
from toolkit.training.steps import GanNets, adam, gan_step, l1_step
from toolkit.training.trainer import autocast_for, native_bf16_cpu

CL = torch.channels_last
CPU = torch.device("cpu")


def _step_fn(stage: str, variant: str, amp: str, vgg):
    """One training step of ``stage`` as the trainer runs it, on fresh networks."""
    torch.manual_seed(0)
    model = build_model(variant).to(memory_format=CL).train()
    optimizer = adam(model.parameters(), RECIPES["paper"].lr)
    if stage == "l1":
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        return lambda lr, hr, scale, timings: l1_step(
            model, model, optimizer, scaler, lr, hr, scale, autocast=autocast_for(CPU, amp)
        )
    disc = MultiScaleDiscriminator().to(memory_format=CL).train()
    nets = GanNets(model, model, disc, disc, vgg, optimizer, adam(disc.parameters(), RECIPES["paper"].lr))
    return lambda lr, hr, scale, timings: gan_step(
        nets,
        lr,
        hr,
        scale,
        autocast=lambda: autocast_for(CPU, amp),
        adv_weight=5e-3,
        vgg_weight=1.0,
        timings=timings,
    )


def measure(stage: str, variant: str, scale: int, amp: str, args, vgg) -> dict:
    step = _step_fn(stage, variant, amp, vgg)
    lr = torch.rand(args.batch, 3, args.patch, args.patch).contiguous(memory_format=CL)
    hr = torch.rand(args.batch, 3, args.patch * scale, args.patch * scale).contiguous(memory_format=CL)
    times, sections = [], {}
    for i in range(args.warmup + args.steps):
        timings = {} if i >= args.warmup else None
        start = time.perf_counter()
        step(lr, hr, scale, timings)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            for name, seconds in timings.items():
                sections.setdefault(name, []).append(seconds)
    median = statistics.median(times)
    row = {
        "stage": stage,
        "variant": variant,
        "scale": scale,
        "amp": amp,
        "batch": args.batch,
        "patch": args.patch,
        "steps_timed": args.steps,
        "median_step_s": median,
        "steps_per_s": 1 / median,
        "patches_per_s": args.batch / median,
    }
    if sections:
        row["seconds_per_section"] = {k: statistics.median(v) for k, v in sections.items()}
    return row


def data_seconds(photos: Path, scale: int, batch: int, patch: int, batches: int) -> float:
    """Median seconds to assemble one batch from the memory-mapped cache (a loader worker's work)."""
    from toolkit.data import PatchCache, StepBatches, discover

    with tempfile.TemporaryDirectory(prefix="pcarn-throughput-") as tmp:
        pairs = discover(photos, (scale,))  # shrunk and detail-filtered as the shipped runs train
        cache = PatchCache(pairs, (scale,), patch, Path(tmp), progress=False, hr_max_side=1024, min_detail=4)
        steps = StepBatches(cache, batch, seed=0)
        times = []
        for index in range(batches):
            start = time.perf_counter()
            steps[index]
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _summary(rows: list[dict]) -> dict:
    """Per (stage, variant, amp): multi-scale steps/s (scales drawn uniformly: harmonic mean) and
    bf16's speed-up over fp32."""
    out: dict[str, dict] = {}
    for row in rows:
        key = f"{row['stage']} {row['variant']}"
        out.setdefault(key, {}).setdefault(row["amp"], []).append(row["steps_per_s"])
    for by_amp in out.values():
        for amp, rates in list(by_amp.items()):
            by_amp[amp] = len(rates) / sum(1 / r for r in rates)
        if "none" in by_amp and "bf16" in by_amp:
            by_amp["bf16_speedup"] = by_amp["bf16"] / by_amp["none"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="l1,gan")
    parser.add_argument("--variants", default="pcarn-m,pcarn")
    parser.add_argument("--scales", default="2,3,4")
    parser.add_argument("--amp", default="none,bf16", help="autocast precisions: none (fp32), bf16")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--data", type=Path, help="a photo folder: also time the batch assembly")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    stages, amps = args.stages.split(","), args.amp.split(",")
    vgg = load_vgg16().to(memory_format=CL).eval() if "gan" in stages else None
    if vgg is not None:
        vgg.requires_grad_(False)
    rows = []
    for stage in stages:
        for variant in args.variants.split(","):
            for amp in amps:
                for scale in (int(s) for s in args.scales.split(",")):
                    row = measure(stage, variant, scale, amp, args, vgg)
                    print(
                        f"{stage:3} {variant:8} x{scale} {amp:4}: {row['steps_per_s']:.2f} steps/s "
                        f"({row['median_step_s']:.2f} s/step, batch {args.batch}, patch {args.patch})",
                        file=sys.stderr,
                    )
                    rows.append(row)
    report = {
        "command": "python -m benchmarks.train_throughput "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "native_bf16": native_bf16_cpu(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
        "multi_scale_steps_per_s": _summary(rows),
    }
    if args.data:
        report["data_seconds_per_batch"] = {
            f"x{s}": data_seconds(args.data, s, args.batch, args.patch, 20) for s in (2, 4)
        }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
