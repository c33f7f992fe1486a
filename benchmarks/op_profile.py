"""Per-op time of exported graphs: where a model's latency goes, and at what multiply-add rate.

ONNX Runtime has a profiler: each node's kernel time is read from its trace, in the real graph.
LiteRT's Python interpreter has none, so each operator of the ``.tflite`` file is cut out into a
one-op model (same operator, options, weights and shapes) and timed alone under XNNPACK; the sum
of those times is printed next to the whole graph's time, so what an isolated op misses (cache
effects, scheduling) is visible. Ops with identical signatures are timed once.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import re
import statistics
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.case import timed
from export.formats import FORMATS, format_of
from export.onnx_format import ort_session
from export.optional import require
from export.tflite_file import TFLiteFile
from export.tflite_format import interpreter
from toolkit.errors import PcarnError, check_names


def _median_time(fn, repeats: int, warmup: int) -> float:
    return statistics.median(timed(fn, warmup, repeats))


def _conv_class(prefix: str, kh: int, kw: int, cin: int, cout: int, groups: int) -> str:
    label = f"grouped g={groups}" if groups > 1 else "dense"
    return f"{prefix} {kh}x{kw} {label} {cin}->{cout}"


# --- LiteRT -------------------------------------------------------------------------------------


def _single_op_model(source: TFLiteFile, op) -> bytes:
    """A model holding only ``op``: its constant inputs keep their weights, the others become inputs."""
    schema, sub = source.schema, source.subgraph
    new = schema.ModelT()
    new.version = source.model.version
    new.operatorCodes = source.model.operatorCodes
    new.buffers = [schema.BufferT()]
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs = [], []
    remap: dict[int, int] = {}

    def take(index: int) -> int:
        if index < 0:
            return index
        if index not in remap:
            tensor = copy.copy(sub.tensors[index])
            raw = source.buffer_bytes(source.model.buffers[tensor.buffer]) if tensor.buffer else None
            if raw is not None:
                buffer = schema.BufferT()
                buffer.data = raw
                new.buffers.append(buffer)
                tensor.buffer = len(new.buffers) - 1
            else:
                tensor.buffer = 0
            remap[index] = len(graph.tensors)
            graph.tensors.append(tensor)
            if raw is None and index not in op.outputs:
                graph.inputs.append(remap[index])
        return remap[index]

    one = copy.copy(op)
    one.inputs = [take(i) for i in op.inputs]
    one.outputs = [take(i) for i in op.outputs]
    one.intermediates = []
    graph.operators = [one]
    graph.outputs = list(one.outputs)
    new.subgraphs = [graph]
    return TFLiteFile(schema, new, b"").pack()


def _tflite_kind(name: str, sub, op) -> tuple[str, int]:
    """A readable op class and its multiply-adds."""
    out_shape = [int(d) for d in sub.tensors[op.outputs[0]].shape]
    if name == "CONV_2D":
        cin = int(sub.tensors[op.inputs[0]].shape[-1])
        cout, kh, kw, depth = (int(d) for d in sub.tensors[op.inputs[1]].shape)
        macs = int(np.prod(out_shape)) * kh * kw * depth
        return _conv_class("CONV_2D", kh, kw, cin, cout, cin // depth), macs
    channels = out_shape[-1] if out_shape else 0
    return f"{name} ->{channels}ch", 0


def tflite_profile(path: Path, threads: int, repeats: int = 5, warmup: int = 2) -> dict:
    """Whole-graph median time and the isolated time of every op of a ``.tflite`` file."""
    source = TFLiteFile.read(Path(path))
    sub = source.subgraph
    whole = _median_time(interpreter(source.data, threads).invoke, repeats, warmup)
    seconds_of: dict[str, float] = {}  # one timing per distinct op signature
    rows: dict[str, dict] = collections.OrderedDict()
    for name, op in source.ops():
        kind, macs = _tflite_kind(name, sub, op)
        shapes = [tuple(sub.tensors[i].shape) if i >= 0 else () for i in (*op.inputs, *op.outputs)]
        options = repr(vars(op.builtinOptions)) if op.builtinOptions is not None else ""
        signature = f"{name}{shapes}{options}"
        if signature not in seconds_of:
            single = _single_op_model(source, op)
            seconds_of[signature] = _median_time(interpreter(single, threads).invoke, repeats, warmup)
        row = rows.setdefault(kind, {"op": kind, "count": 0, "seconds": 0.0, "macs": 0})
        row["count"] += 1
        row["seconds"] += seconds_of[signature]
        row["macs"] += macs
    return _summary(path, "tflite", threads, whole, list(rows.values()), "isolated one-op models")


# --- ONNX Runtime -------------------------------------------------------------------------------


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
            _conv_class("Conv", kh, kw, depth * groups, cout, groups),
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
        return _conv_class("Conv", kh, kw, cin, cout, max(1, cin // depth)), macs
    # ORT's integer kernels (QLinear*) run channels-last: there the channels are the last dimension
    axis = -1 if op.startswith("QLinear") else 1
    channels = outputs[0][axis] if outputs and len(outputs[0]) > 1 else 0
    return f"{op} ->{channels}ch", 0


def onnx_profile(path: Path, threads: int, repeats: int = 5, warmup: int = 2) -> dict:
    """Whole-graph median time and each node's kernel time from ONNX Runtime's own profiler."""
    convs = _onnx_convs(Path(path))

    def session(profile: bool):
        prefix = os.path.join(tempfile.mkdtemp(prefix="pcarn-prof-"), "ort") if profile else None
        sess = ort_session(path, threads, prefix)
        inp = sess.get_inputs()[0]
        x = np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in inp.shape], np.float32)
        return sess, lambda: sess.run(None, {inp.name: x})

    whole = _median_time(session(False)[1], repeats, warmup)
    sess, run = session(True)
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
    return _summary(path, "onnx", threads, whole, list(rows.values()), "ONNX Runtime profiler, in-graph")


# --- shared -------------------------------------------------------------------------------------


def _summary(path: Path, runtime: str, threads: int, whole: float, rows: list[dict], method: str) -> dict:
    total = sum(r["seconds"] for r in rows)
    for r in rows:
        r["share"] = r["seconds"] / total if total else 0.0
        r["macs_per_s"] = r["macs"] / r["seconds"] if r["macs"] and r["seconds"] else None
    rows.sort(key=lambda r: -r["seconds"])
    return {
        "file": str(path),
        "runtime": runtime,
        "threads": threads,
        "method": method,
        "whole_graph_s": whole,
        "sum_of_ops_s": total,
        "rows": rows,
    }


PROFILERS = {"onnx": onnx_profile, "tflite": tflite_profile}


def profile(path: Path, threads: int, repeats: int = 5, warmup: int = 2) -> dict:
    fmt = format_of(path)
    if fmt.name not in PROFILERS:
        raise PcarnError(f"per-op profiles cover {', '.join(PROFILERS)} files, not {fmt.name} ({path})")
    return PROFILERS[fmt.name](path, threads, repeats, warmup)


def _label(result: dict) -> str:
    if "model" in result:
        h, w = result["input_size"]
        return f"{result['model']} x{result['scale']} at {h}x{w} -> 720p"
    return result["file"]


def format_profile(result: dict) -> str:
    lines = [
        f"{_label(result)} ({result['runtime']}, {result['threads']} threads, {result['method']}): "
        f"whole graph {1000 * result['whole_graph_s']:.1f} ms, "
        f"sum of ops {1000 * result['sum_of_ops_s']:.1f} ms",
        f"{'op':<38} {'count':>5} {'ms':>9} {'share':>6} {'GMAC':>7} {'GMAC/s':>7}",
    ]
    for r in result["rows"]:
        rate = f"{r['macs_per_s'] / 1e9:7.1f}" if r["macs_per_s"] else f"{'-':>7}"
        gmac = f"{r['macs'] / 1e9:7.2f}" if r["macs"] else f"{'-':>7}"
        ms, share = 1000 * r["seconds"], 100 * r["share"]
        lines.append(f"{r['op'][:38]:<38} {r['count']:>5} {ms:9.1f} {share:5.1f}% {gmac} {rate}")
    return "\n".join(lines)


def profile_variants(
    variants: list[str], scale: int, runtimes: list[str], threads: int, repeats: int, warmup: int
) -> list[dict]:
    """Profile each variant's head at the 720p-output size in the file ``pcarn export`` writes (random
    weights: time does not depend on them)."""
    import torch

    from benchmarks.runtimes import model_file
    from export.common import default_input_size
    from models import PCARN, PRESETS

    check_names(variants, PRESETS, "variant")
    check_names(runtimes, PROFILERS, "runtime for per-op profiles")
    torch.set_num_threads(threads)
    size = default_input_size(scale)
    results = []
    for variant in variants:
        model = PCARN(PRESETS[variant]).eval()
        for runtime in runtimes:
            workdir = Path(tempfile.mkdtemp(prefix="pcarn-prof-"))
            path = model_file(model, FORMATS[runtime], scale, size, workdir)
            result = profile(path, threads, repeats, warmup)
            # a temporary file: name it, not the machine's folder
            result["file"] = path.name
            results.append({**result, "model": variant, "scale": scale, "input_size": list(size)})
    return results
