"""Before/after of the exporter's graph rewrites, in the runtimes they are for, in one run.

``--rewrite exit-at-lr`` (``export/exit_at_lr.py``): before, the deploy head as ``pcarn export`` writes
it; after, the exit conv folded before the last depth-to-space (ONNX Runtime, LiteRT, ExecuTorch).
``--rewrite conv-transpose`` (``export/shuffle_forms.py``): before, the folded head with DepthToSpace;
after, the same head with each pixel shuffle as a grouped one-hot ConvTranspose (ONNX Runtime,
ExecuTorch; LiteRT keeps its native NHWC DEPTH_TO_SPACE). Both sides go through the exporter's own
path for the runtime (ONNX: trace and onnxsim; TFLite: the native-DEPTH_TO_SPACE NHWC head;
ExecuTorch: XNNPACK lowering), outputs are compared on the same input, and the two are timed
alternately so drift on a shared machine hits both alike.

    python -m benchmarks.rewrites --rewrite exit-at-lr --variants pcarn,pcarn-m --scale 4 --threads 2 \\
        --repeats 7 --out benchmarks/results/exit-rewrite-x4.json
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.case import timed_alternately
from benchmarks.report import before_after_parser, save_rows
from export.common import DeployHead, default_input_size
from export.exit_at_lr import ExitAtLR
from export.onnx_format import simplified_fp32
from export.optional import require
from export.shuffle_forms import ConvTransposeShuffleHead
from export.tflite_d2s import NHWCNativeHead
from export.tflite_format import converted_fp32, interpreter
from models import PRESETS, build_model
from models.multadds import multadds_for_lr_size


def _onnx(module: nn.Module, size: tuple[int, int], threads: int):
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        simplified_fp32(module, size, dynamic=False), options, providers=["CPUExecutionProvider"]
    )
    return lambda x: session.run(None, {"lr": x})[0]


def _tflite(module_nhwc: nn.Module, size: tuple[int, int], threads: int):
    runner = interpreter(converted_fp32(module_nhwc, size), threads)
    source, sink = runner.get_input_details()[0]["index"], runner.get_output_details()[0]["index"]

    def run(x):
        runner.set_tensor(source, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        runner.invoke()
        return runner.get_tensor(sink).transpose(0, 3, 1, 2)

    return run


def _executorch(module: nn.Module, size: tuple[int, int], threads: int):
    from export import executorch_format

    program = torch.export.export(module, (torch.rand(1, 3, *size),))
    folder = tempfile.TemporaryDirectory(prefix="pcarn-rewrite-")  # removed with the runner
    path = Path(folder.name) / "head.pte"
    path.write_bytes(executorch_format.lowered(program, {}))
    run = executorch_format.runner(path, threads)
    return lambda x, _folder=folder: run(x)


RUNNERS = {"onnx": _onnx, "tflite": _tflite, "executorch": _executorch}


def _pairs(rewrite: str, head: DeployHead, runtime: str) -> tuple[nn.Module, nn.Module]:
    if rewrite == "exit-at-lr":
        if runtime == "tflite":
            return NHWCNativeHead(head).eval(), NHWCNativeHead(head, exit_at_lr=True).eval()
        return head, ExitAtLR(head).eval()
    if runtime == "tflite":
        raise ValueError("LiteRT keeps its native DEPTH_TO_SPACE: the conv-transpose form is for ONNX")
    return ExitAtLR(head).eval(), ConvTransposeShuffleHead(head, exit_at_lr=True).eval()


def _extra_multadds(rewrite: str, head: DeployHead, size: tuple[int, int]) -> int:
    """Multiply-adds the rewrite adds to the graph (the paper's count stays the model's)."""
    scale = head.scale
    factors = head.net.heads[f"x{scale}"].factors
    if rewrite == "exit-at-lr":
        exit_macs = 3 * head.net.config.channels * 9 * size[0] * size[1] * scale * scale
        return exit_macs * (factors[-1] ** 2 - 1)
    # a one-hot ConvTranspose multiplies each output by r^2 taps of its group (one of them non-zero)
    folded = ConvTransposeShuffleHead(head, exit_at_lr=True)
    extra, h, w = 0, size[0], size[1]
    for shuffle, r in zip(folded.shuffles, factors, strict=True):
        h, w = h * r, w * r
        extra += shuffle.channels * h * w * r * r
    return extra


def compare(
    variant: str, scale: int, runtime: str, threads: int, repeats: int, warmup: int, rewrite: str
) -> dict:
    torch.manual_seed(0)
    head = DeployHead(build_model(variant).eval(), scale).eval()
    size = default_input_size(scale)
    before, after = _pairs(rewrite, head, runtime)
    runners = {
        "before": RUNNERS[runtime](before, size, threads),
        "after": RUNNERS[runtime](after, size, threads),
    }
    x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
    outputs = {name: run(x) for name, run in runners.items()}
    times = timed_alternately({name: (lambda r=run: r(x)) for name, run in runners.items()}, warmup, repeats)
    before_s, after_s = (statistics.median(times[k]) for k in ("before", "after"))
    model = build_model(variant)
    paper = multadds_for_lr_size(model, scale, size)
    base = paper if rewrite == "exit-at-lr" else paper + _extra_multadds("exit-at-lr", head, size)
    return {
        "rewrite": rewrite,
        "variant": variant,
        "scale": scale,
        "runtime": runtime,
        "input_size": list(size),
        "threads": threads,
        "before_median_s": before_s,
        "after_median_s": after_s,
        "speedup": before_s / after_s,
        "max_abs_difference": float(np.abs(outputs["before"] - outputs["after"]).max()),
        "multadds_paper": paper,
        "multadds_before": base,
        "multadds_after": base + _extra_multadds(rewrite, head, size),
    }


def main(argv: list[str] | None = None) -> int:
    parser = before_after_parser(__doc__.splitlines()[0])
    parser.add_argument("--rewrite", choices=("exit-at-lr", "conv-transpose"), default="exit-at-lr")
    parser.add_argument(
        "--runtimes", default=None, help="default: onnx,tflite (exit-at-lr), onnx (conv-transpose)"
    )
    args = parser.parse_args(argv)
    runtimes = (args.runtimes or ("onnx,tflite" if args.rewrite == "exit-at-lr" else "onnx")).split(",")
    for variant in args.variants.split(","):
        if variant not in PRESETS:
            parser.error(f"unknown variant {variant!r}; choose from {', '.join(PRESETS)}")
    for runtime in runtimes:
        if runtime not in RUNNERS or (runtime == "tflite" and args.rewrite == "conv-transpose"):
            parser.error(f"runtime {runtime!r} does not take the {args.rewrite} rewrite")
    rows = []
    for variant in args.variants.split(","):
        for runtime in runtimes:
            row = compare(variant, args.scale, runtime, args.threads, args.repeats, args.warmup, args.rewrite)
            rows.append(row)
            print(
                f"{args.rewrite} {variant} x{args.scale} {runtime}: {row['before_median_s']:.3f} s -> "
                f"{row['after_median_s']:.3f} s ({row['speedup']:.2f}x), max abs difference "
                f"{row['max_abs_difference']:.1e}, MultAdds {row['multadds_before'] / 1e9:.1f} G -> "
                f"{row['multadds_after'] / 1e9:.1f} G (paper {row['multadds_paper'] / 1e9:.1f} G)"
            )
    if args.out:
        save_rows(args.out, "benchmarks.rewrites", argv, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
