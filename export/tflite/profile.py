"""Per-op time of a ``.tflite`` file: LiteRT's Python interpreter has no profiler, so each operator
is cut out into a one-op model (same operator, options, weights and shapes) and timed alone under
XNNPACK; the sum of those times is printed next to the whole graph's time, so what an isolated op
misses (cache effects, scheduling) is visible. Ops with identical signatures are timed once."""

from __future__ import annotations

import collections
import copy
from pathlib import Path

import numpy as np

from export.profiling import conv_class, median_time, summary
from export.tflite.exporter import interpreter
from export.tflite.file import TFLiteFile


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
        return conv_class("CONV_2D", kh, kw, cin, cout, cin // depth), macs
    channels = out_shape[-1] if out_shape else 0
    return f"{name} ->{channels}ch", 0


def tflite_profile(path: Path, threads: int, repeats: int = 5, warmup: int = 2) -> dict:
    """Whole-graph median time and the isolated time of every op of a ``.tflite`` file."""
    source = TFLiteFile.read(Path(path))
    sub = source.subgraph
    whole = median_time(interpreter(source.data, threads).invoke, repeats, warmup)
    seconds_of: dict[str, float] = {}  # one timing per distinct op signature
    rows: dict[str, dict] = collections.OrderedDict()
    for name, op in source.ops():
        kind, macs = _tflite_kind(name, sub, op)
        shapes = [tuple(sub.tensors[i].shape) if i >= 0 else () for i in (*op.inputs, *op.outputs)]
        options = repr(vars(op.builtinOptions)) if op.builtinOptions is not None else ""
        signature = f"{name}{shapes}{options}"
        if signature not in seconds_of:
            single = _single_op_model(source, op)
            seconds_of[signature] = median_time(interpreter(single, threads).invoke, repeats, warmup)
        row = rows.setdefault(kind, {"op": kind, "count": 0, "seconds": 0.0, "macs": 0})
        row["count"] += 1
        row["seconds"] += seconds_of[signature]
        row["macs"] += macs
    return summary(path, "tflite", threads, whole, list(rows.values()), "isolated one-op models")
