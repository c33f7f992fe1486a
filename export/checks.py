"""Graph checks that read each exported file back (never the exporter's own view of it).

1. grouped convs stay single grouped convs; 2. activations fused where the format fuses them;
3. one depth-to-space per upsampling stage and no tensor of rank > 4; 4. weight sharing kept
(unique constant bytes <= 1.05x the head's unique parameter bytes); 5. TFLite ops that XNNPACK
takes; 6. an op histogram.
"""

from __future__ import annotations

import collections
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from export.common import DeployHead
from export.optional import require
from export.shuffle_forms import is_one_hot_shuffle
from export.tflite_file import TFLiteFile

WEIGHT_SLACK = 1.05
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


@dataclass
class Expectation:
    """What the PyTorch head says the file must contain."""

    grouped_convs: int
    groups: int
    convs: int
    upsample_stages: int
    unique_param_count: int
    unique_bias_count: int = 0

    def weight_bytes(self, precision: str) -> int:
        if precision == "int8":  # int8 weights, int32 biases (both runtimes' integer convs)
            return (self.unique_param_count - self.unique_bias_count) + 4 * self.unique_bias_count
        return self.unique_param_count * (2 if precision == "fp16" else 4)


def expectation(head: DeployHead) -> Expectation:
    calls: list[torch.nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda mod, *_: calls.append(mod))
        for m in head.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        head(torch.rand(1, 3, 8, 8))
    for h in hooks:
        h.remove()
    return Expectation(
        grouped_convs=sum(1 for c in calls if c.groups > 1),
        groups=head.net.config.groups,
        convs=len(calls),
        upsample_stages=len(head.net.heads[f"x{head.scale}"].factors),
        unique_param_count=sum(p.numel() for p in head.parameters()),
        unique_bias_count=sum(p.numel() for name, p in head.named_parameters() if name.endswith("bias")),
    )


@dataclass
class GraphReport:
    ops: dict[str, int]
    checks: dict[str, dict] = field(default_factory=dict)

    def add(self, name: str, passed: bool | None, detail: str) -> None:
        self.checks[name] = {"passed": passed, "detail": detail}

    @property
    def passed(self) -> bool:
        return all(c["passed"] is not False for c in self.checks.values())


def unique_bytes(arrays) -> int:
    seen: dict[str, int] = {}
    for array in arrays:
        data = np.ascontiguousarray(array).tobytes()
        seen.setdefault(hashlib.sha1(data).hexdigest(), len(data))
    return sum(seen.values())


def weight_check(report: GraphReport, unique: int, exp: Expectation, precision: str) -> None:
    limit = WEIGHT_SLACK * exp.weight_bytes(precision)
    report.add(
        "weight_sharing",
        unique <= limit,
        f"{unique:,} unique constant bytes vs {exp.weight_bytes(precision):,} head parameter bytes "
        f"({unique / exp.weight_bytes(precision):.3f}x, limit {WEIGHT_SLACK}x)",
    )


def grouped_check(report: GraphReport, grouped: int, split_ops: int, exp: Expectation) -> None:
    ok = grouped == exp.grouped_convs and split_ops == 0
    report.add(
        "grouped_convs",
        ok,
        f"{grouped} grouped convs (groups={exp.groups}), expected "
        f"{exp.grouped_convs}; {split_ops} split/slice ops",
    )


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
        and modes <= {"CRD"}
        and max_rank <= 4
        and not other_transposed,
        f"{len(d2s)} DepthToSpace (mode {', '.join(sorted(modes)) or '-'}) and {len(one_hot)} one-hot "
        f"ConvTranspose shuffles for {exp.upsample_stages} stage(s); {other_transposed} other "
        f"ConvTranspose; max tensor rank {max_rank}",
    )
    initializers = model.graph.initializer
    if precision == "int8":  # the quantized tensors; scales and zero points are quantization parameters
        quantized = {n.input[0] for n in nodes if n.op_type == "DequantizeLinear"}
        initializers = [i for i in initializers if i.name in quantized]
    # the shuffles' one-hot weights are data movement, not model weights
    arrays = [numpy_helper.to_array(i) for i in initializers if i.name not in one_hot]
    weight_check(report, unique_bytes(arrays), exp, precision)
    if precision == "int8":
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


def _onnx_int8_checks(report: GraphReport, nodes: list, model, exp: Expectation) -> None:
    """QDQ units: every Conv reads int8 weights and quantized activations; every other op sits
    between DequantizeLinear and QuantizeLinear (so ONNX Runtime runs it on 8-bit data); no
    DequantizeLinear feeds a QuantizeLinear directly (a float round trip between integer ops)."""
    producer = {out: n for n in nodes for out in n.output}
    consumers = collections.defaultdict(list)
    for n in nodes:
        for name in n.input:
            consumers[name].append(n)
    int8_inits = {i.name for i in model.graph.initializer if i.data_type == 3}  # INT8
    outputs = {o.name for o in model.graph.output}

    def from_dq(name: str) -> bool:
        return name in producer and producer[name].op_type == "DequantizeLinear"

    convs = [n for n in nodes if n.op_type == "Conv"]
    integer = [
        n
        for n in convs
        if from_dq(n.input[0]) and from_dq(n.input[1]) and producer[n.input[1]].input[0] in int8_inits
    ]
    report.add(
        "integer_convs",
        len(integer) == len(convs) == exp.convs,
        f"{len(integer)} of {len(convs)} Conv read int8 weights and quantized activations "
        f"(expected {exp.convs})",
    )
    quantization = {"QuantizeLinear", "DequantizeLinear", "Constant"}
    floating = []
    for n in nodes:
        if n.op_type in quantization:
            continue
        data_inputs = [i for i in n.input if i and i in producer]
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
    declared = {"Sub": 1}  # the input mean, on the float input before its QuantizeLinear
    report.add(
        "integer_graph",
        stays_float <= collections.Counter(declared) and round_trips == 0,
        f"ops outside a QDQ unit: {counted(stays_float)} (declared: the input mean Sub); "
        f"{round_trips} DequantizeLinear -> QuantizeLinear round trips",
    )


def counted(counter: collections.Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def check_tflite(path: Path, exp: Expectation, precision: str) -> GraphReport:
    tflite = TFLiteFile.read(path)
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
        _tflite_int8_checks(report, tflite, ops, exp)
        buffers = _tflite_integer_buffers(tflite)
    weight_check(report, unique_bytes(buffers), exp, precision)
    outside = sorted({name for name, _ in ops} - XNNPACK_OPS - {"QUANTIZE"})
    report.add(
        "xnnpack",
        not outside,
        "every op is in XNNPACK's supported list"
        if not outside
        else f"ops outside XNNPACK's list: {', '.join(outside)}",
    )
    return report


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


def _tflite_int8_checks(report: GraphReport, tflite: TFLiteFile, ops: list, exp: Expectation) -> None:
    """Full-integer: every CONV_2D reads int8 activations and weights; no DEQUANTIZE (a float island
    between integer ops); float ops only where declared (the input mean before the first QUANTIZE)."""
    sub, schema = tflite.subgraph, tflite.schema
    int8 = schema.TensorType.INT8
    convs = [op for name, op in ops if name == "CONV_2D"]
    integer = [op for op in convs if all(sub.tensors[i].type == int8 for i in op.inputs[:2])]
    report.add(
        "integer_convs",
        len(integer) == len(convs) == exp.convs,
        f"{len(integer)} of {len(convs)} CONV_2D on int8 activations and weights (expected {exp.convs})",
    )
    floating = collections.Counter(
        name
        for name, op in ops
        if name != "QUANTIZE" and any(sub.tensors[i].type == schema.TensorType.FLOAT32 for i in op.outputs)
    )
    report.add(
        "integer_graph",
        floating <= collections.Counter({"SUB": 1}) and report.ops.get("DEQUANTIZE", 0) == 0,
        f"float ops: {counted(floating)} (declared: the input mean SUB); "
        f"{report.ops.get('DEQUANTIZE', 0)} DEQUANTIZE; output {_tensor_type(sub, sub.outputs[0], schema)}",
    )


def _tensor_type(sub, index: int, schema) -> str:
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return names.get(sub.tensors[index].type, "?").lower()


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
    tensors = [m.val for name, m in weights.items() if np.asarray(m.val).size > 4]
    if precision == "int8":  # int8 weights and the biases; scales and zero points are parameters
        tensors = [m.val for name, m in weights.items() if not name.endswith(("_scale", "_zero_point"))]
        _coreml_int8_checks(report, operations, exp)
    weight_check(report, unique_bytes(tensors), exp, precision)
    return report


def _coreml_int8_checks(report: GraphReport, operations: list, exp: Expectation) -> None:
    """W8A8: every conv reads an int8 weight (constexpr_affine_dequantize) and a dequantized int8
    activation."""
    producer = {out.name: op for op in operations for out in op.outputs}

    def made_by(name: str, kind: str) -> bool:
        return name in producer and producer[name].type == kind

    convs = [op for op in operations if op.type == "conv"]
    integer = [
        op
        for op in convs
        if made_by(op.inputs["weight"].arguments[0].name, "constexpr_affine_dequantize")
        and made_by(op.inputs["x"].arguments[0].name, "dequantize")
    ]
    report.add(
        "integer_convs",
        len(integer) == len(convs) == exp.convs,
        f"{len(integer)} of {len(convs)} conv read int8 weights and quantized activations "
        f"(expected {exp.convs})",
    )
