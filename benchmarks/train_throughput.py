"""Training throughput (patches/s) of stage 1 on this machine, per variant and scale.

One timed step is the trainer's own (``toolkit.training.steps.l1_step``): forward, L1 loss, backward, gradient
clip, Adam update, channels-last on CPU. Synthetic batches isolate compute from data loading (which runs in
worker processes during training). Run:
``python -m benchmarks.train_throughput --out benchmarks/results/train_throughput.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from models import build_model
from toolkit.training.recipes import RECIPES
from toolkit.training.steps import adam, l1_step


def measure(variant: str, scale: int, batch: int, patch: int, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = build_model(variant).to(memory_format=torch.channels_last).train()
    optimizer = adam(model.parameters(), RECIPES["paper"].lr)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    lr = torch.rand(batch, 3, patch, patch).contiguous(memory_format=torch.channels_last)
    hr = torch.rand(batch, 3, patch * scale, patch * scale).contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        l1_step(model, model, optimizer, scaler, lr, hr, scale)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "variant": variant,
        "scale": scale,
        "batch": batch,
        "patch": patch,
        "steps_timed": steps,
        "median_step_s": median,
        "patches_per_s": batch / median,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="pcarn-m,pcarn")
    parser.add_argument("--scales", default="2,3,4")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for variant in args.variants.split(","):
        for scale in (int(s) for s in args.scales.split(",")):
            row = measure(variant, scale, args.batch, args.patch, args.steps, args.warmup)
            print(
                f"{variant:8s} x{scale}: {row['patches_per_s']:6.1f} patches/s "
                f"({row['median_step_s']:.2f} s/step, batch {args.batch}, patch {args.patch})",
                file=sys.stderr,
            )
            rows.append(row)
    summary = {}
    for variant in args.variants.split(","):
        mine = [r for r in rows if r["variant"] == variant]
        # a multi-scale run draws scales uniformly: its throughput is the harmonic mean
        summary[variant] = len(mine) / sum(1 / r["patches_per_s"] for r in mine)
    report = {
        "command": "python -m benchmarks.train_throughput "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
        "multi_scale_patches_per_s": summary,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
