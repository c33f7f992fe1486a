"""PT2E annotations both PT2E-quantized formats need (TFLite through litert-torch, ExecuTorch through
XNNPACK's quantizer), applied before the stock annotator, which skips what is already annotated.

- Tied units: PCARN-M calls one residual unit at several positions. The stock annotators mark a
  weight as done after its first conv, so the other calls stayed float; here every conv is annotated
  and the later calls share the first call's weight observer, so the tied weights are quantized
  once, identically (and stored once). For XNNPACK each later integer call also owns a copy of the
  bias, whose int32 scale is its own input's (``whole_convs``; LiteRT was not affected).
- conv + ReLU is one fused integer op: the range is observed after the ReLU.
- Min-max activation ranges: the full output range survives (no clipped highlights), and
  calibration is many times faster than the stock histogram observer.
"""

from __future__ import annotations

import dataclasses
import operator

import torch

from export.kept_ranges import Ranges, calibrate
from export.optional import require

RELU = (torch.ops.aten.relu.default, torch.ops.aten.relu_.default)


def layout_ops() -> set:
    """Ops that only move bytes (reshapes, permutes, slices): an int8 one takes its input's
    quantization parameters in both converters."""
    return {
        torch.ops.aten.reshape.default,
        torch.ops.aten.view.default,
        torch.ops.aten.permute.default,
        torch.ops.aten.transpose.int,
        torch.ops.aten.slice.Tensor,
    }


def annotate_convs(model: torch.fx.GraphModule, config) -> None:
    """Annotate every conv of ``model`` with ``config`` (a PT2E ``QuantizationConfig``), tied
    weights sharing one observer, a conv's lone ReLU fused."""
    spec = require("torchao.quantization.pt2e.quantizer")
    first_use: dict[torch.fx.Node, torch.fx.Node] = {}
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target != torch.ops.aten.conv2d.default:
            continue
        act, weight = node.args[0], node.args[1]
        bias = node.args[2] if len(node.args) > 2 else None
        if weight in first_use:  # a tied unit: one observer for every call
            weight_spec = spec.SharedQuantizationSpec((weight, first_use[weight]))
        else:
            weight_spec, first_use[weight] = config.weight, node
        inputs = {act: config.input_activation, weight: weight_spec}
        if isinstance(bias, torch.fx.Node):
            inputs[bias] = config.bias
        users = list(node.users)
        relu = users[0] if len(users) == 1 and users[0].target in RELU else None
        node.meta["quantization_annotation"] = spec.QuantizationAnnotation(
            input_qspec_map=inputs,
            output_qspec=None if relu is not None else config.output_activation,
            _annotated=True,
        )
        if relu is not None:
            relu.meta["quantization_annotation"] = spec.QuantizationAnnotation(
                output_qspec=config.output_activation, _annotated=True
            )


def with_min_max_ranges(config):
    """``config`` with min-max observers for the activations."""
    observer = require("torchao.quantization.pt2e").MinMaxObserver.with_args(eps=2**-12)
    activation = dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=observer)
    return dataclasses.replace(config, input_activation=activation, output_activation=activation)


def calibrated(
    net: torch.nn.Module,
    sample: tuple,
    quantizer,
    inputs: list[torch.Tensor],
    dynamic_shapes: tuple | None = None,
    fold: bool = False,
    ranges: Ranges | None = None,
) -> torch.fx.GraphModule:
    """``net`` exported on ``sample`` (with ``dynamic_shapes``), annotated by ``quantizer``,
    calibrated on ``inputs`` and converted to explicit quantize/dequantize ops; unfolded (weights
    quantized in the graph) unless ``fold``: the graph still runs in PyTorch, as the mixed-precision
    choice runs it (``export/pt2e_mixed.py``); ``ranges``: a store of earlier runs' calibrations
    (``export/kept_ranges.py``)."""
    quantize_pt2e = require("torchao.quantization.pt2e.quantize_pt2e")
    graph = torch.export.export(net.eval(), sample, dynamic_shapes=dynamic_shapes).module()
    prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
    calibrate(prepared, inputs, ranges)
    return quantize_pt2e.convert_pt2e(prepared, fold_quantize=fold)


def float_weight_convs(model: torch.fx.GraphModule, names: tuple[str, ...]) -> None:
    """Leave the ``names`` convs (the mixed choice's float weights, ``export/pt2e_mixed.py``) float,
    weights and all: none of their inputs is annotated. Run after the annotators."""
    chosen = set(names)
    for node in model.graph.nodes:
        annotation = node.meta.get("quantization_annotation")
        if node.name in chosen and annotation is not None:
            annotation.input_qspec_map.clear()


def conv_outputs(model: torch.fx.GraphModule, names: tuple[str, ...]) -> tuple[str, ...]:
    """The tensors the ``names`` convs write: a conv's lone ReLU where it has one (fused)."""
    chosen, out = set(names), []
    for node in model.graph.nodes:
        if node.name in chosen:
            users = list(node.users)
            out.append(users[0].name if len(users) == 1 and users[0].target in RELU else node.name)
    return tuple(out)


def _integer_conv(node: torch.fx.Node) -> bool:
    """Whether an annotated conv reads and writes int8 (its output range set after a fused ReLU)."""
    annotation = node.meta.get("quantization_annotation")
    if annotation is None or node.args[0] not in annotation.input_qspec_map:
        return False
    users = list(node.users)
    if annotation.output_qspec is None and len(users) == 1 and users[0].target in RELU:
        annotation = users[0].meta.get("quantization_annotation")
    return annotation is not None and annotation.output_qspec is not None


def whole_convs(model: torch.fx.GraphModule, config) -> None:
    """Convs left reading or writing float (``export/pt2e_mixed.py``'s choice) get float weights
    too, since XNNPACK runs a conv in int8 or in float, not int8 weights on float data; a tied
    weight's remaining integer calls share the first one's observer and own their biases. Run after
    ``keep_float``."""
    spec = require("torchao.quantization.pt2e.quantizer")
    first_use: dict[torch.fx.Node, torch.fx.Node] = {}
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target != torch.ops.aten.conv2d.default:
            continue
        inputs = node.meta["quantization_annotation"].input_qspec_map
        weight = node.args[1]
        if not _integer_conv(node):
            for source in node.args[:3]:
                inputs.pop(source, None)
            _own_parameters(model, node, node.args[1:3])
        elif weight in first_use:
            inputs[weight] = spec.SharedQuantizationSpec((weight, first_use[weight]))
            _own_parameters(model, node, node.args[2:3], inputs)
        else:
            inputs[weight], first_use[weight] = config.weight, node
    model.recompile()


def _own_parameters(
    model: torch.fx.GraphModule, conv: torch.fx.Node, sources: tuple, annotated: dict | None = None
) -> None:
    """Give ``conv`` its own copies of the ``sources`` parameters it shares with other calls of a
    tied unit (moving their entries in ``annotated``, its input spec map). A float call needs its
    own weight and bias: XNNPACK stores a parameter once, and an integer call's int32 bias would
    reach the float call. An integer call needs its own bias: the int32 bias is scaled by the
    call's input scale, and XNNPACK quantizes a shared bias once, for the first call (a tied conv
    called on a second input 8x wider was off by 4.3 on average in the lowered file)."""
    for source in sources:
        if isinstance(source, torch.fx.Node) and source.op == "get_attr" and len(source.users) > 1:
            name = f"{source.target.replace('.', '_')}_own_{conv.name}"
            model.register_buffer(name, operator.attrgetter(source.target)(model).detach().clone())
            with model.graph.inserting_before(conv):
                own = model.graph.get_attr(name)
            conv.replace_input_with(source, own)
            if annotated is not None and source in annotated:
                annotated[own] = annotated.pop(source)
