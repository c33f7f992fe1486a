"""Mixed precision for ONNX Runtime: int8 files whose noisiest activations stay 16-bit.

The head is quantized once with every activation 16-bit (weights int8); an activation is put at 8
bits by giving it 8-bit resolution inside its 16-bit Q/DQ pair (its scale x257, zero point /257: the
same range in 256 steps), so every candidate graph is that one file with a few numbers changed. The
choice itself is ``export/mixed.py``'s; the chosen tensors are named to ONNX Runtime's quantizer as
16-bit overrides (``export/onnx/int8.py``). Conv weights whose int8 rounding alone costs too much
are chosen first, on the fp32 graph with those weights rounded, and their convs left float.

Where even every activation at 16 bits misses the budget (the authors' PCARN-M-L1 x2: +0.41 dB
predicted on the selection crops, +0.067 on held-out photos), the same rule first picks the fewest
activations to keep float, their Q/DQ pairs removed from the file (``bypassed``), so that the rest at
16 bits costs at most ``FLOAT_SHARE`` of the selection share; the 8-bit choice is then made among
the rest, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from export.image_io import from_pixels, to_pixels
from export.mixed import SAFETY, WEIGHT_SHARE, WideChoice, choose_kept, y_plane
from export.optional import require

EIGHT_BIT_STEP = 257  # 65535 / 255: an 8-bit step in 16-bit units
GRAPH_OUTPUT_SUFFIX = "_QuantizeLinear_Input"  # the quantizer renames a graph output's producer
FLOAT_SHARE = 0.75  # of the selection share, what float activations may leave to the 8-bit choice


def _activation_qparams(model) -> dict[str, tuple[str, str]]:
    """Tensor name in the float graph -> (scale initializer, zero-point initializer) of every
    quantized activation."""
    initializers = {i.name for i in model.graph.initializer}
    return {
        n.input[0].removesuffix(GRAPH_OUTPUT_SUFFIX): (n.input[1], n.input[2])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] not in initializers
    }


def _eight_bit(model, qparams: list[tuple[str, str]]) -> bytes:
    """A copy of the 16-bit ``model`` with the ``qparams`` activations at 8-bit resolution over the
    same ranges."""
    onnx = require("onnx")
    from onnx import numpy_helper

    scales = {scale for scale, _ in qparams}
    zeros = {zero for _, zero in qparams}
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in copy.graph.initializer:
        if init.name in scales:
            value = numpy_helper.to_array(init) * np.float32(EIGHT_BIT_STEP)
            init.CopyFrom(numpy_helper.from_array(value.astype(np.float32), init.name))
        elif init.name in zeros:
            zero = numpy_helper.to_array(init)
            narrowed = np.round(zero / EIGHT_BIT_STEP).astype(zero.dtype)
            init.CopyFrom(numpy_helper.from_array(narrowed, init.name))
    return copy.SerializeToString()


def _runner(pairs: list[tuple[np.ndarray, np.ndarray]], image: bool) -> Callable[[bytes], list[np.ndarray]]:
    """Runs a serialized graph on the LR crops of ``pairs``; returns their outputs' Y planes."""
    ort = require("onnxruntime")
    inputs = [np.ascontiguousarray(lr.transpose(2, 0, 1))[None] for lr, _ in pairs]
    if image:
        inputs = [to_pixels(x) for x in inputs]

    def run(serialized: bytes) -> list[np.ndarray]:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
        ys = [session.run(None, {"lr": x})[0] for x in inputs]
        ys = [from_pixels(y) if image else np.asarray(y, dtype=np.float32) for y in ys]
        return [y_plane(y[0].transpose(1, 2, 0)) for y in ys]

    return run


def choose_wide(
    fp32: bytes,
    wide_model: bytes,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    budget_db: float,
    border: int,
    image: bool = False,
) -> WideChoice:
    """The tensors of ``wide_model`` (``fp32`` quantized with int8 weights and 16-bit activations)
    that must stay 16-bit, or float where 16 bits are not enough, for the predicted cost on
    ``pairs`` (LR, HR crops) to fit the budget; ``image``: the graphs take and return uint8 NHWC
    pixels."""
    onnx = require("onnx")
    run = _runner(pairs, image)
    model = onnx.load_from_string(wide_model)
    qparams = _activation_qparams(model)
    names = list(qparams)
    reference, hr = run(fp32), [h for _, h in pairs]

    def eight_bit(base, serialized: bytes) -> Callable[[Sequence[str]], list[np.ndarray]]:
        return lambda narrow: run(_eight_bit(base, [qparams[n] for n in narrow]) if narrow else serialized)

    choice = choose_kept(names, eight_bit(model, wide_model), reference, hr, budget_db, border, "16-bit")
    if choice.predicted_cost_db <= SAFETY * budget_db:
        return choice
    relus = relu_outputs(onnx.load_from_string(fp32))

    def sixteen_bit(narrow: Sequence[str]) -> list[np.ndarray]:  # ``narrow`` 16-bit, the others float
        kept = set(narrow)
        return run(bypassed(model, [n for n in names if n not in kept], relus).SerializeToString())

    floats = choose_kept(names, sixteen_bit, reference, hr, FLOAT_SHARE * budget_db, border, "float").wide
    rest = [n for n in names if n not in floats]
    base = bypassed(model, floats, relus)
    mixed = choose_kept(
        rest, eight_bit(base, base.SerializeToString()), reference, hr, budget_db, border, "16-bit"
    )
    return WideChoice(
        floats + mixed.wide,
        len(names),
        mixed.predicted_cost_db,
        choice.all_int8_cost_db,
        "16-bit",
        float_activations=floats,
    )


def relu_outputs(fp32_model) -> set[str]:
    """The tensors a Relu writes in the float graph: ONNX Runtime's quantizer folds each Relu into
    the range of the Q/DQ pair after the op before it, whose output takes the Relu's name."""
    return {n.output[0] for n in fp32_model.graph.node if n.op_type == "Relu"}


def bypassed(model, names: Sequence[str], relus: set[str]):
    """A copy of the quantized ``model`` with the Q/DQ pairs of the ``names`` activations removed, so
    those tensors stay float: each pair becomes an Identity, or the Relu the quantizer had folded
    into its range; the pairs' scales and zero points go with them."""
    onnx = require("onnx")
    from onnx import helper

    graph_inputs = {f"{n}{GRAPH_OUTPUT_SUFFIX}": n for n in names}
    wanted = set(names) | set(graph_inputs)
    quantizers = {
        n.output[0]: n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in wanted
    }
    nodes, dropped = [], set()
    for node in model.graph.node:
        if node.output[0] in quantizers:
            dropped.update(node.input[1:])
            continue
        if node.op_type == "DequantizeLinear" and node.input[0] in quantizers:
            source = quantizers[node.input[0]].input[0]
            op = "Relu" if graph_inputs.get(source, source) in relus else "Identity"
            nodes.append(helper.make_node(op, [source], [node.output[0]], name=f"{node.output[0]}_float"))
            continue
        nodes.append(node)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [i for i in copy.graph.initializer if i.name not in dropped or i.name in used]
    del copy.graph.initializer[:]
    copy.graph.initializer.extend(kept)
    return copy


def conv_weights(model) -> dict[str, list[str]]:
    """Weight initializer -> the Conv nodes that read it (a tied conv is one weight, several nodes)."""
    initializers = {i.name for i in model.graph.initializer}
    out: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in initializers:
            out.setdefault(node.input[1], []).append(node.name)
    return out


def conv_nodes(weights: dict[str, list[str]], chosen: tuple[str, ...]) -> tuple[str, ...]:
    """The Conv nodes that read the ``chosen`` weights (``weights``: ``conv_weights``'s map)."""
    return tuple(node for name in chosen for node in weights[name])


def int8_round_trip(weight: np.ndarray) -> np.ndarray:
    """``weight`` through per-output-channel symmetric int8, as ONNX Runtime's quantizer stores it."""
    absmax = np.abs(weight).reshape(weight.shape[0], -1).max(axis=1)
    scale = np.maximum(absmax * 2.0 / 255.0, np.finfo(np.float32).tiny).reshape(-1, *[1] * (weight.ndim - 1))
    return (np.clip(np.round(weight / scale), -128, 127) * scale).astype(weight.dtype)


def choose_float_weights(
    fp32: bytes, pairs: list[tuple[np.ndarray, np.ndarray]], budget_db: float, border: int, image: bool
) -> tuple[str, ...]:
    """The fewest conv weights of ``fp32`` to keep float for int8 weights alone (activations float)
    to cost at most ``WEIGHT_SHARE`` of the selection share of ``budget_db`` on the selection crops."""
    onnx = require("onnx")
    from onnx import numpy_helper

    run = _runner(pairs, image)
    model = onnx.load_from_string(fp32)
    names = list(conv_weights(model))
    rounded = {
        i.name: numpy_helper.from_array(int8_round_trip(numpy_helper.to_array(i)), i.name)
        for i in model.graph.initializer
        if i.name in names
    }

    def outputs(narrow: Sequence[str]) -> list[np.ndarray]:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        for init in copy.graph.initializer:
            if init.name in narrow:
                init.CopyFrom(rounded[init.name])
        return run(copy.SerializeToString())

    hr = [h for _, h in pairs]
    return choose_kept(names, outputs, run(fp32), hr, WEIGHT_SHARE * budget_db, border, "float").wide
