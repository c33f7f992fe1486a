"""Pixel shuffle lowerings in ONNX Runtime, timed alone on one upsampling stage's tensor.

The per-op profile shows ONNX Runtime spending 20-32% of a PCARN/PCARN-M x4 run in DepthToSpace.
This compares the same exact shuffle written three ways: DepthToSpace (CRD), the explicit
Reshape-Transpose-Reshape, and a grouped ConvTranspose (groups=C, 2x2, stride 2) with one-hot weights,
which reads each input once and writes each output once. All three outputs are checked equal.

    python -m benchmarks.onnx_shuffle --out benchmarks/results/onnx-shuffle.json
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from benchmarks.report import save_rows
from export.optional import require
from export.profiling import timed


def _graphs(channels: int, block: int, h: int, w: int) -> dict[str, bytes]:
    onnx = require("onnx")
    helper, numpy_helper, tp = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    x = helper.make_tensor_value_info("x", tp.FLOAT, [1, channels * block * block, h, w])
    y = helper.make_tensor_value_info("y", tp.FLOAT, None)

    def model(nodes, inits=()):
        graph = helper.make_graph(nodes, "shuffle", [x], [y], initializer=list(inits))
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()

    one_hot = np.zeros((channels * block * block, 1, block, block), np.float32)
    for c in range(channels):
        for i in range(block):
            for j in range(block):
                one_hot[(c * block + i) * block + j, 0, i, j] = 1.0
    shape_in = numpy_helper.from_array(np.array([1, channels, block, block, h, w], np.int64), "s1")
    shape_out = numpy_helper.from_array(np.array([1, channels, h * block, w * block], np.int64), "s2")
    return {
        "DepthToSpace (CRD)": model(
            [helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=block, mode="CRD")]
        ),
        "Reshape-Transpose-Reshape": model(
            [
                helper.make_node("Reshape", ["x", "s1"], ["a"]),
                helper.make_node("Transpose", ["a"], ["b"], perm=[0, 1, 4, 2, 5, 3]),
                helper.make_node("Reshape", ["b", "s2"], ["y"]),
            ],
            [shape_in, shape_out],
        ),
        "ConvTranspose one-hot (grouped)": model(
            [
                helper.make_node(
                    "ConvTranspose",
                    ["x", "w"],
                    ["y"],
                    group=channels,
                    kernel_shape=[block, block],
                    strides=[block, block],
                )
            ],
            [numpy_helper.from_array(one_hot, "w")],
        ),
    }


def compare(
    channels: int, block: int, size: tuple[int, int], threads: int, repeats: int, warmup: int
) -> list:
    ort = require("onnxruntime")
    x = np.random.default_rng(0).random((1, channels * block * block, *size), dtype=np.float32)
    rows, reference = [], None
    for name, content in _graphs(channels, block, *size).items():
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        out = session.run(None, {"x": x})[0]
        reference = out if reference is None else reference
        seconds = timed(lambda s=session: s.run(None, {"x": x}), warmup, repeats)
        rows.append(
            {
                "lowering": name,
                "median_s": statistics.median(seconds),
                "min_s": min(seconds),
                "equal_to_depth_to_space": bool(np.array_equal(out, reference)),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", default="360x640", help="LR size of the stage (x4 second stage: 360x640)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    rows = compare(args.channels, 2, (h, w), args.threads, args.repeats, args.warmup)
    for r in rows:
        print(f"{r['lowering']:34} {1000 * r['median_s']:8.1f} ms  exact: {r['equal_to_depth_to_space']}")
    if args.out:
        save_rows(args.out, "benchmarks.onnx_shuffle", argv, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
