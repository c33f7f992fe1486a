"""Core ML graph checks: the ML Program read back with coremltools (no model load)."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import numpy as np

from export.checks import Expectation, GraphReport, grouped_check, unique_bytes, weight_check
from export.image_io import is_image_file
from export.mixed import FLOAT_CONVS
from export.optional import require


def coreml_program(path: Path):
    ct = require("coremltools")
    model = ct.models.MLModel(str(path), skip_model_load=True)
    function = model.get_spec().mlProgram.functions["main"]
    return model, list(function.block_specializations[function.opset].operations)


def coreml_weights(model) -> dict:
    """The program's constants by name; an int8 weight's parts end in ``_quantized_data``,
    ``_scale`` and ``_zero_point`` (coremltools numbers them per call; the number is dropped)."""
    ct = require("coremltools")
    weights = ct.optimize.coreml.get_weights_metadata(model, weight_threshold=0)
    return {re.sub(r"_(quantized_data|scale|zero_point)_\d+$", r"_\1", k): v for k, v in weights.items()}


def check_coreml(path: Path, exp: Expectation, precision: str) -> GraphReport:
    model, operations = coreml_program(path)
    report = GraphReport(dict(collections.Counter(op.type for op in operations)))
    weights = coreml_weights(model)
    shapes = {
        op.outputs[0].name: [d.constant.size for d in op.outputs[0].type.tensorType.dimensions]
        for op in operations
        if op.outputs
    }
    grouped = 0
    for op in (o for o in operations if o.type == "conv"):
        name = op.inputs["weight"].arguments[0].name
        weight = weights.get(name, weights.get(name + "_quantized_data")).val
        in_channels = shapes.get(op.inputs["x"].arguments[0].name, [0, 0])[1] or weight.shape[1]
        grouped += weight.shape[1] < in_channels
    grouped_check(report, grouped, report.ops.get("split", 0) + report.ops.get("slice_by_index", 0), exp)
    report.add(
        "fused_activations",
        None,
        f"ML Program keeps {report.ops.get('relu', 0)} relu ops; Core ML fuses "
        "them when it compiles the model on device",
    )
    shuffles = report.ops.get("pixel_shuffle", 0) + report.ops.get("depth_to_space", 0)
    max_rank = max((len(s) for s in shapes.values()), default=0)
    report.add(
        "pixel_shuffle",
        shuffles == exp.upsample_stages and max_rank <= 4,
        f"{shuffles} pixel_shuffle for {exp.upsample_stages} stage(s); max tensor rank {max_rank}",
    )
    if is_image_file(model.user_defined_metadata):
        _image_types_check(report, model)
    tensors = [m.val for name, m in weights.items() if np.asarray(m.val).size > 4]
    declared = 0
    if precision == "int8":  # int8 weights and the biases; scales and zero points are parameters
        tensors = [m.val for name, m in weights.items() if not name.endswith(("_scale", "_zero_point"))]
        declared = int(model.user_defined_metadata.get(FLOAT_CONVS, 0))
        _coreml_int8_checks(report, operations, exp, declared)
    weight_check(report, unique_bytes(tensors), exp, precision, mixed=declared > 0)
    return report


def _image_types_check(report: GraphReport, model) -> None:
    """An image file (``--io image``): RGB image input and output, as an app's pixel buffers."""
    ft = require("coremltools").proto.FeatureTypes_pb2
    description = model.get_spec().description
    kinds = [
        (f.name, f.type.WhichOneof("Type"), ft.ImageFeatureType.ColorSpace.Name(f.type.imageType.colorSpace))
        for f in (*description.input, *description.output)
    ]
    report.add(
        "image_io",
        all(kind == "imageType" and space == "RGB" for _, kind, space in kinds),
        "; ".join(
            f"{name}: {kind} {space if kind == 'imageType' else ''}".rstrip() for name, kind, space in kinds
        ),
    )


def _coreml_int8_checks(report: GraphReport, operations: list, exp: Expectation, float_convs: int) -> None:
    """W8A8: every conv reads an int8 weight (constexpr_affine_dequantize) and a dequantized int8
    activation, but the ``float_convs`` the file declares (``export/coreml/mixed.py``: weights kept
    float, or a float activation), which run in float16."""
    producer = {out.name: op for op in operations for out in op.outputs}

    def made_by(name: str, kind: str) -> bool:
        return name in producer and producer[name].type == kind

    convs = [op for op in operations if op.type == "conv"]
    int8_weights = [
        op for op in convs if made_by(op.inputs["weight"].arguments[0].name, "constexpr_affine_dequantize")
    ]
    integer = [op for op in int8_weights if made_by(op.inputs["x"].arguments[0].name, "dequantize")]
    floating = len(convs) - len(integer)
    report.add(
        "integer_convs",
        len(convs) == exp.convs and floating == float_convs,
        f"{len(integer)} of {len(convs)} conv read int8 weights and quantized activations; {floating} "
        f"run float: {len(convs) - len(int8_weights)} with float weights, {len(int8_weights) - len(integer)} "
        f"reading a float activation ({float_convs} declared; expected {exp.convs} convs)",
    )
