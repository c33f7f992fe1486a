"""Before/after of the exit-conv rewrite (``export/exit_at_lr.py``) in ONNX Runtime, one run, one machine.

``before``: the deploy head as ``pcarn export`` writes it (exit conv at full resolution, after the last
DepthToSpace). ``after``: the exit conv folded before the last DepthToSpace. Both go through the same
ONNX path (trace, onnxsim); outputs are compared on the same input, and the two sessions are timed
alternately so drift on a shared machine hits both alike.

    python -m benchmarks.exit_rewrite --variants pcarn,pcarn-m --scale 4 --threads 2 --repeats 7 \\
        --out benchmarks/results/exit-rewrite-x4.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from benchmarks.report import save_rows
from export.common import DeployHead, default_input_size
from export.exit_at_lr import ExitAtLR
from export.onnx_format import _simplified_fp32
from export.optional import require
from models import PRESETS, build_model
from models.multadds import multadds_for_lr_size


def compare(variant: str, scale: int, threads: int, repeats: int, warmup: int) -> dict:
    ort = require("onnxruntime")
    torch.manual_seed(0)
    head = DeployHead(build_model(variant).eval(), scale).eval()
    size = default_input_size(scale)
    graphs = {"before": head, "after": ExitAtLR(head).eval()}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
    sessions, outputs = {}, {}
    for name, module in graphs.items():
        model = _simplified_fp32(module, size, dynamic=False)
        sessions[name] = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        outputs[name] = sessions[name].run(None, {"lr": x})[0]
    times = {name: [] for name in sessions}
    for i in range(warmup + repeats):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {"lr": x})
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    before, after = (statistics.median(times[k]) for k in ("before", "after"))
    model = build_model(variant)
    exit_macs = 3 * model.config.channels * 9 * size[0] * size[1] * scale * scale
    return {
        "variant": variant,
        "scale": scale,
        "input_size": list(size),
        "threads": threads,
        "before_median_s": before,
        "after_median_s": after,
        "speedup": before / after,
        "max_abs_difference": float(np.abs(outputs["before"] - outputs["after"]).max()),
        "multadds_before": multadds_for_lr_size(model, scale, size),
        "multadds_after": multadds_for_lr_size(model, scale, size)
        + exit_macs * (head.net.heads[f"x{scale}"].factors[-1] ** 2 - 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="pcarn,pcarn-m")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    rows = []
    for variant in args.variants.split(","):
        if variant not in PRESETS:
            parser.error(f"unknown variant {variant!r}; choose from {', '.join(PRESETS)}")
        row = compare(variant, args.scale, args.threads, args.repeats, args.warmup)
        rows.append(row)
        print(
            f"{variant} x{args.scale}: {row['before_median_s']:.3f} s -> {row['after_median_s']:.3f} s "
            f"({row['speedup']:.2f}x), max abs difference {row['max_abs_difference']:.1e}, MultAdds "
            f"{row['multadds_before'] / 1e9:.1f} G -> {row['multadds_after'] / 1e9:.1f} G"
        )
    if args.out:
        save_rows(args.out, "benchmarks.exit_rewrite", argv, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
