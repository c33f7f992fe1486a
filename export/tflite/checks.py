"""TFLite graph checks: the flatbuffer read back, XNNPACK's op list, full-integer int8."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from export.checks import Expectation, GraphReport, counted, grouped_check, unique_bytes, weight_check
from export.image_io import is_image_file
from export.mixed import FLOAT_CONVS
from export.tflite.file import TFLiteFile
from export.tflite.resizable import is_resizable

# Builtins the XNNPACK delegate takes for float models (its documented operator list, the subset
# these graphs can contain).
XNNPACK_OPS = {
    "ADD",
    "SUB",
    "MUL",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "CONCATENATION",
    "RELU",
    "RESHAPE",
    "TRANSPOSE",
    "DEQUANTIZE",
    "PAD",
    "MEAN",
    "FULLY_CONNECTED",
}


# an image file's edges (export/image_io.py) that XNNPACK leaves to LiteRT's kernels, and the
# float ops of an int8 image file (uint8 -> float before the input mean; after the exit conv its
# dequantized output x255, rounded and cast, and one layout transpose)
IMAGE_EDGES = {"CAST", "ROUND", "RELU_0_TO_1"}
IMAGE_INT8_EDGES = collections.Counter({"CAST": 1, "DEQUANTIZE": 1, "MUL": 1, "ROUND": 1, "TRANSPOSE": 1})


def check_tflite(path: Path, exp: Expectation, precision: str) -> GraphReport:
    tflite = TFLiteFile.read(path)
    metadata = tflite.metadata()
    schema, sub = tflite.schema, tflite.subgraph
    ops = tflite.ops()
    report = GraphReport(dict(collections.Counter(name for name, _ in ops)))
    grouped = 0
    fused = unfused_conv = 0
    for name, op in ops:
        if name != "CONV_2D":
            continue
        in_channels = sub.tensors[op.inputs[0]].shape[-1]
        filter_depth = sub.tensors[op.inputs[1]].shape[-1]
        grouped += filter_depth < in_channels
        activation = op.builtinOptions.fusedActivationFunction
        fused += activation != schema.ActivationFunctionType.NONE
        unfused_conv += activation == schema.ActivationFunctionType.NONE
    grouped_check(report, grouped, report.ops.get("SPLIT", 0) + report.ops.get("SLICE", 0), exp)
    separate = report.ops.get("RELU", 0)
    report.add(
        "fused_activations",
        separate == 0,
        f"{fused} CONV_2D with a fused RELU, {unfused_conv} without; {separate} separate RELU ops",
    )
    max_rank = max(len(t.shape) if t.shape is not None else 0 for t in sub.tensors)
    d2s = report.ops.get("DEPTH_TO_SPACE", 0)
    report.add(
        "pixel_shuffle",
        d2s == exp.upsample_stages and max_rank <= 4,
        f"{d2s} DEPTH_TO_SPACE for {exp.upsample_stages} stage(s) "
        f"({report.ops.get('RESHAPE', 0)} RESHAPE, {report.ops.get('TRANSPOSE', 0)} TRANSPOSE); "
        f"max tensor rank {max_rank}",
    )
    buffers = tflite.constant_buffers()
    if precision == "int8":
        float_convs = int(metadata.get(FLOAT_CONVS, 0))
        _tflite_int8_checks(report, tflite, ops, exp, is_image_file(metadata), float_convs)
        buffers = _tflite_integer_buffers(tflite)
    weight_check(report, unique_bytes(buffers), exp, precision)
    outside = sorted({name for name, _ in ops} - XNNPACK_OPS - {"QUANTIZE"})
    declared = ""
    if is_image_file(metadata) and IMAGE_EDGES & set(outside):
        edges = sorted(IMAGE_EDGES & set(outside))
        outside = [name for name in outside if name not in IMAGE_EDGES]
        declared += f"; declared: an image file's pixel conversions {', '.join(edges)} beside XNNPACK"
    if "dynamic" in metadata:
        _resizable_check(report, tflite)
        if "STRIDED_SLICE" in outside:  # XNNPACK slices with unit strides only
            outside.remove("STRIDED_SLICE")
            declared += (
                f"; declared: {report.ops['STRIDED_SLICE']} STRIDED_SLICE of the --dynamic channel "
                "reorder run on LiteRT's own kernels"
            )
    report.add(
        "xnnpack",
        not outside,
        (
            "every op is in XNNPACK's supported list"
            if not outside
            else f"ops outside XNNPACK's list: {', '.join(outside)}"
        )
        + declared,
    )
    return report


def _resizable_check(report: GraphReport, tflite: TFLiteFile) -> None:
    """A --dynamic file: a free input height and width, and no RESHAPE holding the export size."""
    signature = tflite.subgraph.tensors[tflite.subgraph.inputs[0]].shapeSignature
    reshapes = report.ops.get("RESHAPE", 0)
    report.add(
        "resizable",
        is_resizable(tflite) and reshapes == 0,
        f"input shape signature {[int(d) for d in signature] if signature is not None else None}; "
        f"{reshapes} RESHAPE",
    )


def _tflite_integer_buffers(tflite: TFLiteFile) -> list[np.ndarray]:
    """The int8 / int32 constant tensors' bytes (weights and biases of the integer convs)."""
    sub, schema = tflite.subgraph, tflite.schema
    integer = {schema.TensorType.INT8, schema.TensorType.INT32}
    out = []
    seen = set()
    for tensor in sub.tensors:
        if tensor.type not in integer or tensor.buffer in seen:
            continue
        data = tflite.buffer_bytes(tflite.model.buffers[tensor.buffer])
        if data is not None and len(data) > 16:  # shapes and axes are small int32 constants
            seen.add(tensor.buffer)
            out.append(data)
    return out


def _tflite_int8_checks(
    report: GraphReport, tflite: TFLiteFile, ops: list, exp: Expectation, image: bool, float_convs: int
) -> None:
    """Full-integer: every CONV_2D reads int8 activations and weights but the ``float_convs`` the
    file declares (activations kept float for its budget, ``export/pt2e_mixed.py``); without them, no
    DEQUANTIZE (a float island between integer ops) and float ops only where declared (the input
    mean before the first QUANTIZE)."""
    sub, schema = tflite.subgraph, tflite.schema
    int8 = schema.TensorType.INT8
    convs = [op for name, op in ops if name == "CONV_2D"]
    integer = [op for op in convs if all(sub.tensors[i].type == int8 for i in op.inputs[:2])]
    floating_convs = [op for op in convs if sub.tensors[op.inputs[0]].type == schema.TensorType.FLOAT32]
    report.add(
        "integer_convs",
        len(convs) == exp.convs
        and len(integer) == exp.convs - float_convs
        and len(floating_convs) == float_convs,
        f"{len(integer)} of {len(convs)} CONV_2D on int8 activations and weights, {len(floating_convs)} on "
        f"float activations (expected {exp.convs}, of them {float_convs} float as the file declares)",
    )
    floating = collections.Counter(
        name
        for name, op in ops
        if name != "QUANTIZE" and any(sub.tensors[i].type == schema.TensorType.FLOAT32 for i in op.outputs)
    )
    if float_convs:  # the float islands the file declares: what runs float is reported, not judged
        report.add(
            "integer_graph",
            True,
            f"declared float activations; float ops: {counted(floating)}; "
            f"output {_tensor_type(sub, sub.outputs[0], schema)}",
        )
        return
    declared, what = collections.Counter({"SUB": 1}), "the input mean SUB"
    dequantized = 0
    if image:  # float from the exit conv on: round to the 256 levels
        declared += IMAGE_INT8_EDGES
        dequantized = 1
        what += f", an image file's pixel conversions ({counted(IMAGE_INT8_EDGES)})"
    report.add(
        "integer_graph",
        floating <= declared and report.ops.get("DEQUANTIZE", 0) == dequantized,
        f"float ops: {counted(floating)} (declared: {what}); "
        f"{report.ops.get('DEQUANTIZE', 0)} DEQUANTIZE; output {_tensor_type(sub, sub.outputs[0], schema)}",
    )


def _tensor_type(sub, index: int, schema) -> str:
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return names.get(sub.tensors[index].type, "?").lower()
