"""Before/after of the exit-conv rewrite (``export/exit_at_lr.py``) in ONNX Runtime and LiteRT, one run.

``before``: the deploy head as ``pcarn export`` writes it (exit conv at full resolution, after the last
depth-to-space). ``after``: the exit conv folded before the last depth-to-space. Both go through the
exporter's own path for the runtime (ONNX: trace and onnxsim; TFLite: the native-DEPTH_TO_SPACE NHWC
head); outputs are compared on the same input, and the two are timed alternately so drift on a shared
machine hits both alike.

    python -m benchmarks.exit_rewrite --variants pcarn,pcarn-m --scale 4 --threads 2 --repeats 7 \\
        --out benchmarks/results/exit-rewrite-x4.json
"""

from __future__ import annotations

import statistics

import numpy as np
import torch

from benchmarks.case import timed_alternately
from benchmarks.report import before_after_parser, save_rows
from export.common import DeployHead, default_input_size
from export.exit_at_lr import ExitAtLR
from export.onnx_format import simplified_fp32
from export.optional import require
from export.tflite_d2s import NHWCNativeHead
from export.tflite_format import converted_fp32, interpreter
from models import PRESETS, build_model
from models.multadds import multadds_for_lr_size


def _onnx_runners(head: DeployHead, size: tuple[int, int], threads: int) -> dict:
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    runners = {}
    for name, module in (("before", head), ("after", ExitAtLR(head).eval())):
        session = ort.InferenceSession(
            simplified_fp32(module, size, dynamic=False), options, providers=["CPUExecutionProvider"]
        )
        runners[name] = lambda x, s=session: s.run(None, {"lr": x})[0]
    return runners


def _tflite_runners(head: DeployHead, size: tuple[int, int], threads: int) -> dict:
    runners = {}
    for name, folded in (("before", False), ("after", True)):
        data = converted_fp32(NHWCNativeHead(head, exit_at_lr=folded).eval(), size)
        runner = interpreter(data, threads)
        source, sink = runner.get_input_details()[0]["index"], runner.get_output_details()[0]["index"]

        def run(x, r=runner, i=source, o=sink):
            r.set_tensor(i, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
            r.invoke()
            return r.get_tensor(o).transpose(0, 3, 1, 2)

        runners[name] = run
    return runners


RUNNERS = {"onnx": _onnx_runners, "tflite": _tflite_runners}


def compare(variant: str, scale: int, runtime: str, threads: int, repeats: int, warmup: int) -> dict:
    torch.manual_seed(0)
    head = DeployHead(build_model(variant).eval(), scale).eval()
    size = default_input_size(scale)
    runners = RUNNERS[runtime](head, size, threads)
    x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
    outputs = {name: run(x) for name, run in runners.items()}
    times = timed_alternately({name: (lambda r=run: r(x)) for name, run in runners.items()}, warmup, repeats)
    before, after = (statistics.median(times[k]) for k in ("before", "after"))
    model = build_model(variant)
    exit_macs = 3 * model.config.channels * 9 * size[0] * size[1] * scale * scale
    return {
        "variant": variant,
        "scale": scale,
        "runtime": runtime,
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
    parser = before_after_parser(__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default="onnx,tflite")
    args = parser.parse_args(argv)
    rows = []
    for variant in args.variants.split(","):
        if variant not in PRESETS:
            parser.error(f"unknown variant {variant!r}; choose from {', '.join(PRESETS)}")
    for runtime in args.runtimes.split(","):
        if runtime not in RUNNERS:
            parser.error(f"unknown runtime {runtime!r}; choose from {', '.join(RUNNERS)}")
    for variant in args.variants.split(","):
        for runtime in args.runtimes.split(","):
            row = compare(variant, args.scale, runtime, args.threads, args.repeats, args.warmup)
            rows.append(row)
            print(
                f"{variant} x{args.scale} {runtime}: {row['before_median_s']:.3f} s -> "
                f"{row['after_median_s']:.3f} s ({row['speedup']:.2f}x), max abs difference "
                f"{row['max_abs_difference']:.1e}, MultAdds {row['multadds_before'] / 1e9:.1f} G -> "
                f"{row['multadds_after'] / 1e9:.1f} G"
            )
    if args.out:
        save_rows(args.out, "benchmarks.exit_rewrite", argv, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
