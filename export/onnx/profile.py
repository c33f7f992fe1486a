"""Per-op time of an ``.onnx`` file from ONNX Runtime's own profiler: each node's kernel time read
from its trace, in the real graph, with the multiply-adds of its convs."""

from __future__ import annotations

import collections
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from export.onnx.exporter import ort_session
from export.optional import require
from export.profiling import conv_class, median_time, summary


def _onnx_convs(path: Path) -> dict[str, tuple[str, int]]:
    """Each Conv of the file, keyed by node name and by output name, as (op class, multiply-adds).

    ORT's NCHWc pass renames the convs it rewrites after their output (``<output>_nchwc``) and pads
    channels to its block size in the shapes it reports, so classes and counts come from the file.
    """
    onnx = require("onnx")
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*graph.value_info, *graph.input, *graph.output)
    }
    weights = {i.name: list(i.dims) for i in graph.initializer}
    # int8 (QDQ) graphs: a Conv's weight is a DequantizeLinear of the int8 initializer
    weights.update(
        {
            n.output[0]: weights[n.input[0]]
            for n in graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in weights
        }
    )
    convs = {}
    for node in graph.node:
        if node.op_type != "Conv" or node.input[1] not in weights:
            continue
        cout, depth, kh, kw = weights[node.input[1]]
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        entry = (
            conv_class("Conv", kh, kw, depth * groups, cout, groups),
            int(np.prod(shapes[node.output[0]])) * kh * kw * depth,
        )
        convs[node.name] = convs[node.output[0]] = entry
    return convs


def _onnx_kind(node: str, args: dict, convs: dict[str, tuple[str, int]]) -> tuple[str, int]:
    """Op class and multiply-adds of one profiled ORT kernel."""
    # ORT renames rewritten convs: NCHWc ones after their output, fused QDQ units "<node>_token_N"
    for key in (node, node.removesuffix("_nchwc"), re.sub(r"_token_\d+$", "", node)):
        if key in convs:
            return convs[key]
    op = args.get("op_name", "?")
    shapes = [next(iter(t.values())) for t in args.get("input_type_shape", [])]
    outputs = [next(iter(t.values())) for t in args.get("output_type_shape", [])]
    if op in ("Conv", "FusedConv") and len(shapes) >= 2 and len(shapes[1]) == 4 and outputs:
        cin = shapes[0][1]
        cout, depth, kh, kw = shapes[1]
        macs = int(np.prod(outputs[0])) * kh * kw * depth
        return conv_class("Conv", kh, kw, cin, cout, max(1, cin // depth)), macs
    # ORT's integer kernels (QLinear*) run channels-last: there the channels are the last dimension
    axis = -1 if op.startswith("QLinear") else 1
    channels = outputs[0][axis] if outputs and len(outputs[0]) > 1 else 0
    return f"{op} ->{channels}ch", 0


def onnx_profile(path: Path, threads: int, repeats: int = 5, warmup: int = 2) -> dict:
    """Whole-graph median time and each node's kernel time from ONNX Runtime's own profiler."""
    convs = _onnx_convs(Path(path))

    def session(prefix: str | None):
        sess = ort_session(path, threads, prefix)
        inp = sess.get_inputs()[0]
        x = np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in inp.shape], np.float32)
        return sess, lambda: sess.run(None, {inp.name: x})

    whole = median_time(session(None)[1], repeats, warmup)
    with tempfile.TemporaryDirectory(prefix="pcarn-prof-") as folder:  # the trace, read and removed
        sess, run = session(os.path.join(folder, "ort"))
        for _ in range(warmup + repeats):
            run()
        trace = json.loads(Path(sess.end_profiling()).read_text())
    # Keep the kernels of the last ``repeats`` runs: the warm-up runs allocate and pack weights.
    windows = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in trace
        if e.get("cat") == "Session" and e.get("name") == "model_run"
    )[-repeats:]
    events = [
        e
        for e in trace
        if e.get("cat") == "Node"
        and e.get("name", "").endswith("_kernel_time")
        and any(lo <= e["ts"] <= hi for lo, hi in windows)
    ]
    runs = max(1, len(windows))
    rows: dict[str, dict] = collections.OrderedDict()
    for event in events:
        kind, macs = _onnx_kind(event["name"][: -len("_kernel_time")], event.get("args", {}), convs)
        row = rows.setdefault(kind, {"op": kind, "count": 0, "seconds": 0.0, "macs": 0})
        row["count"] += 1
        row["seconds"] += event["dur"] * 1e-6
        row["macs"] += macs
    for row in rows.values():  # per run
        row["count"] //= runs
        row["seconds"] /= runs
        row["macs"] //= runs
    return summary(path, "onnx", threads, whole, list(rows.values()), "ONNX Runtime profiler, in-graph")
