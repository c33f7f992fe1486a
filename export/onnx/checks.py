"""ONNX graph checks: the file read back with onnx, QDQ units for int8."""

from __future__ import annotations

import collections
from pathlib import Path

from export.checks import Expectation, GraphReport, counted, grouped_check, unique_bytes, weight_check
from export.image_io import is_image_file
from export.mixed import FLOAT_ACTIVATIONS, FLOAT_CONVS
from export.onnx.mixed import GRAPH_OUTPUT_SUFFIX
from export.optional import require
from export.options import QUANTIZED_PRECISIONS
from export.shuffle_forms import is_one_hot_shuffle

# an image file's float edges (export/image_io.py): uint8 -> float and /255 before the input mean,
# clamp, x255, round and the uint8 cast after the exit conv's DequantizeLinear, one layout transpose
IMAGE_EDGES = collections.Counter({"Cast": 1, "Div": 1, "Clip": 1, "Mul": 1, "Round": 1, "Transpose": 1})


def check_onnx(path: Path, exp: Expectation, precision: str) -> GraphReport:
    onnx = require("onnx")
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    nodes = list(model.graph.node)
    report = GraphReport(dict(collections.Counter(n.op_type for n in nodes)))
    attr = lambda n, k: next((onnx.helper.get_attribute_value(a) for a in n.attribute if a.name == k), None)  # noqa: E731
    grouped = sum(1 for n in nodes if n.op_type == "Conv" and (attr(n, "group") or 1) > 1)
    splits = sum(report.ops.get(op, 0) for op in ("Split", "Slice"))
    grouped_check(report, grouped, splits, exp)
    report.add(
        "fused_activations",
        None,
        f"ONNX has no fused conv activation; {report.ops.get('Relu', 0)} Relu "
        "nodes that runtimes fuse when they load the graph",
    )
    d2s = [n for n in nodes if n.op_type == "DepthToSpace"]
    modes = {
        (attr(n, "mode") or b"DCR").decode() if isinstance(attr(n, "mode"), bytes) else attr(n, "mode")
        for n in d2s
    }
    inferred = shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    max_rank = max(len(v.type.tensor_type.shape.dim) for v in values)
    one_hot, other_transposed = _one_hot_shuffles(model, nodes, attr)
    report.add(
        "pixel_shuffle",
        len(d2s) + len(one_hot) == exp.upsample_stages
        and modes <= {"DCR"}
        and max_rank <= 4
        and not other_transposed,
        f"{len(d2s)} DepthToSpace (mode {', '.join(sorted(modes)) or '-'}) and {len(one_hot)} one-hot "
        f"ConvTranspose shuffles for {exp.upsample_stages} stage(s); {other_transposed} other "
        f"ConvTranspose; max tensor rank {max_rank}",
    )
    initializers = model.graph.initializer
    if (
        precision in QUANTIZED_PRECISIONS
    ):  # the quantized tensors; scales and zero points are quantization parameters
        quantized = {n.input[0] for n in nodes if n.op_type == "DequantizeLinear"}
        initializers = [i for i in initializers if i.name in quantized]
    # the shuffles' one-hot weights are data movement, not model weights
    arrays = [numpy_helper.to_array(i) for i in initializers if i.name not in one_hot]
    weight_check(report, unique_bytes(arrays), exp, precision)
    if precision in QUANTIZED_PRECISIONS:
        _onnx_int8_checks(report, nodes, model, exp)
    return report


def _one_hot_shuffles(model, nodes: list, attr) -> tuple[set[str], int]:
    """Names of the one-hot weights of ConvTransposes that are pixel shuffles
    (``export/shuffle_forms.py``), and how many ConvTransposes are something else."""
    from onnx import numpy_helper

    arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    through = {n.output[0]: n.input[0] for n in nodes if n.op_type in ("Cast", "DequantizeLinear")}
    names, others = set(), 0
    for n in (n for n in nodes if n.op_type == "ConvTranspose"):
        name = through.get(n.input[1], n.input[1])
        shape = arrays[name].shape if name in arrays else ()
        kernel = attr(n, "kernel_shape") or list(shape[2:])
        if name in arrays and is_one_hot_shuffle(
            arrays[name], attr(n, "group") or 1, kernel, attr(n, "strides")
        ):
            names.add(name)
        else:
            others += 1
    return names, others


def _float_tensors(nodes: list, metadata: dict) -> set[str]:
    """The activations a mixed file keeps float (``FLOAT_ACTIVATIONS``), as the file names them: the
    producer's output (a graph output's under the quantizer's suffix) and what the Identity or Relu
    standing in for the removed Q/DQ pair writes."""
    names = {n for n in metadata.get(FLOAT_ACTIVATIONS, "").split(",") if n}
    names |= {n + GRAPH_OUTPUT_SUFFIX for n in names}
    stand_ins = {n.output[0] for n in nodes if n.op_type in ("Identity", "Relu") and n.input[0] in names}
    return names | stand_ins


def _onnx_int8_checks(report: GraphReport, nodes: list, model, exp: Expectation) -> None:
    """QDQ units: every Conv reads int8 weights and quantized activations (or an activation the
    mixed choice keeps float); every other op sits between DequantizeLinear and QuantizeLinear (so
    ONNX Runtime runs it on 8-bit data) unless it touches a float activation; no DequantizeLinear
    feeds a QuantizeLinear directly (a float round trip between integer ops)."""
    producer = {out: n for n in nodes for out in n.output}
    consumers = collections.defaultdict(list)
    for n in nodes:
        for name in n.input:
            consumers[name].append(n)
    int8_inits = {i.name for i in model.graph.initializer if i.data_type == 3}  # INT8
    outputs = {o.name for o in model.graph.output}
    metadata = {p.key: p.value for p in model.metadata_props}
    float_tensors = _float_tensors(nodes, metadata)

    def from_dq(name: str) -> bool:
        return name in producer and producer[name].op_type == "DequantizeLinear"

    convs = [n for n in nodes if n.op_type == "Conv"]
    integer = [
        n
        for n in convs
        if (from_dq(n.input[0]) or n.input[0] in float_tensors)
        and from_dq(n.input[1])
        and producer[n.input[1]].input[0] in int8_inits
    ]
    float_inputs = sum(1 for n in integer if n.input[0] in float_tensors)
    floats = {i.name for i in model.graph.initializer if i.data_type == 1}  # FLOAT
    float_weights = [n for n in convs if n.input[1] in floats]
    declared_float = int(metadata.get(FLOAT_CONVS, 0))
    report.add(
        "integer_convs",
        len(integer) + len(float_weights) == len(convs) == exp.convs and len(float_weights) == declared_float,
        f"{len(integer)} of {len(convs)} Conv read int8 weights and a quantized activation (or, "
        f"{float_inputs} of them, a declared float one; expected {exp.convs}); "
        f"{len(float_weights)} run float, weights and all "
        f"({declared_float} declared by the file's mixed-precision choice)",
    )
    quantization = {"QuantizeLinear", "DequantizeLinear", "Constant", "Shape"}  # Shape reads no data
    floating, touching = [], 0
    for n in nodes:
        if n.op_type in quantization:
            continue
        if float_tensors & {*n.input, *n.output}:  # reads or writes an activation kept float
            touching += 1
            continue
        # a Reshape's second input is a shape (computed from Shape in a --dynamic graph), not data
        inputs = n.input[:1] if n.op_type == "Reshape" else n.input
        data_inputs = [i for i in inputs if i and i in producer]
        ins_ok = all(from_dq(i) for i in data_inputs)
        outs_ok = all(
            o in outputs or all(c.op_type == "QuantizeLinear" for c in consumers[o]) for o in n.output
        )
        if not (ins_ok and outs_ok):
            floating.append(n.op_type)
    round_trips = sum(
        1
        for n in nodes
        if n.op_type == "DequantizeLinear"
        and any(c.op_type == "QuantizeLinear" for c in consumers[n.output[0]])
    )
    stays_float = collections.Counter(floating)
    declared = collections.Counter({"Sub": 1})  # the input mean, on the float input before its QuantizeLinear
    what = "the input mean Sub"
    if float_weights:  # the mixed choice's float convs and the ReLUs that runtimes fuse into them
        float_outputs = {n.output[0] for n in float_weights}
        relus = sum(1 for n in nodes if n.op_type == "Relu" and n.input[0] in float_outputs)
        declared += collections.Counter({"Conv": len(float_weights), "Relu": relus})
        what += f", {len(float_weights)} float convs and their {relus} ReLUs"
    if is_image_file(metadata):
        declared += IMAGE_EDGES
        what += f", an image file's pixel conversions ({counted(IMAGE_EDGES)})"
    if float_tensors:
        what += f"; {touching} more read or write one of the file's declared float activations"
    report.add(
        "integer_graph",
        stays_float <= declared and round_trips == 0,
        f"ops outside a QDQ unit: {counted(stays_float)} (declared: {what}); "
        f"{round_trips} DequantizeLinear -> QuantizeLinear round trips",
    )
