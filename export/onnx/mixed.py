"""Mixed-precision int8 for ONNX Runtime: the fewest activations kept 16-bit so that a head's int8
cost fits the budget.

Plain 8-bit activations cost PCARN-M x2 +0.28 dB PSNR-Y on photos it was never calibrated on, and
the loss is not in one layer: it lives in the tensors that carry the picture itself (the
mean-subtracted input, the entry conv's output that the global residual adds back, the concatenations,
the upsampling path and the output). The choice is measured, not guessed:

1. the head is quantized once with every activation 16-bit (weights int8), on the calibration crops;
2. each activation in turn is given 8-bit resolution inside its 16-bit Q/DQ pair (its scale x257,
   zero point /257: the same range in 256 steps), and its rounding noise on the output is measured on
   selection crops (other crops of the calibration photos, never the photos the cost is reported on);
3. the noisiest stay 16-bit: the fewest of them for which the graph with every other activation at
   8-bit resolution costs at most half the budget on the selection crops (their fp32 error against
   their HR plus the added noise); the other half is left for photos unlike the calibration ones.

The choice is made on a small copy of the graph (``SELECT_SIZE``); tensor names do not depend on
the input size, so it applies to the file's own graph, which is calibrated as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.image_io import from_pixels, to_pixels
from export.optional import require
from toolkit.metrics.fidelity import rgb_to_y

SELECT_SIZE = (96, 128)
SELECT_SAMPLES = 4
EIGHT_BIT_STEP = 257  # 65535 / 255: an 8-bit step in 16-bit units
SAFETY = 0.5  # share of the budget the selection crops may use


@dataclass(frozen=True)
class WideChoice:
    """Which activation tensors stay 16-bit, and what the selection crops predicted."""

    wide: tuple[str, ...]
    activations: int
    predicted_cost_db: float
    all_int8_cost_db: float

    def summary(self) -> str:
        return (
            f"{len(self.wide)} of {self.activations} activations 16-bit (predicted cost "
            f"{self.predicted_cost_db:+.3f} dB on selection crops; all 8-bit {self.all_int8_cost_db:+.3f} dB)"
        )


GRAPH_OUTPUT_SUFFIX = "_QuantizeLinear_Input"  # the quantizer renames a graph output's producer


def _activation_qparams(model) -> list[tuple[str, str, str]]:
    """(tensor name in the float graph, scale initializer, zero-point initializer) of every
    quantized activation."""
    initializers = {i.name for i in model.graph.initializer}
    return [
        (n.input[0].removesuffix(GRAPH_OUTPUT_SUFFIX), n.input[1], n.input[2])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] not in initializers
    ]


def _eight_bit(model, qparams: list[tuple[str, str, str]]):
    """A copy of the 16-bit ``model`` with the ``qparams`` activations at 8-bit resolution over the
    same ranges."""
    onnx = require("onnx")
    from onnx import numpy_helper

    scales = {scale for _, scale, _ in qparams}
    zeros = {zero for _, _, zero in qparams}
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


def _y(nchw: np.ndarray) -> np.ndarray:
    """The metric's view of an output: rounded to 8-bit pixels, then Y."""
    return rgb_to_y(np.clip(np.round(nchw[0].transpose(1, 2, 0) * 255.0), 0, 255))


def choose_wide(
    fp32: bytes,
    wide_model: bytes,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    budget_db: float,
    image: bool = False,
) -> WideChoice:
    """The tensors of ``wide_model`` (``fp32`` quantized with int8 weights and 16-bit activations)
    that must stay 16-bit for the predicted cost on ``pairs`` (LR, HR crops) to fit
    ``SAFETY * budget_db``; ``image``: the graphs take and return uint8 NHWC pixels."""
    onnx = require("onnx")
    ort = require("onnxruntime")
    inputs = [np.ascontiguousarray(lr.transpose(2, 0, 1))[None] for lr, _ in pairs]
    if image:
        inputs = [to_pixels(x) for x in inputs]

    def outputs(serialized: bytes) -> list[np.ndarray]:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
        ys = [session.run(None, {"lr": x})[0] for x in inputs]
        return [_y(from_pixels(y) if image else np.asarray(y, dtype=np.float32)) for y in ys]

    reference = outputs(fp32)
    border = lambda a, b: np.mean((a - b)[4:-4, 4:-4] ** 2)  # noqa: E731 - the metric's border
    error = np.mean([border(r, rgb_to_y(hr)) for r, (_, hr) in zip(reference, pairs, strict=True)])
    error = max(float(error), 1e-6)

    def noise(ys: list[np.ndarray]) -> float:
        return float(np.mean([border(y, r) for y, r in zip(ys, reference, strict=True)]))

    model = onnx.load_from_string(wide_model)
    floor = noise(outputs(wide_model))
    qparams = _activation_qparams(model)
    added = {q: noise(outputs(_eight_bit(model, [q]))) - floor for q in qparams}
    ranked = sorted(qparams, key=added.get, reverse=True)
    cost = lambda extra: 10.0 * np.log10((error + floor + max(0.0, extra)) / error)  # noqa: E731

    costs: dict[int, float] = {len(ranked): cost(0.0)}

    def measured(wide: int) -> float:  # the cost with the ``wide`` noisiest kept 16-bit, the rest 8-bit
        if wide not in costs:
            costs[wide] = cost(noise(outputs(_eight_bit(model, ranked[wide:]))) - floor)
        return costs[wide]

    # Noise powers roughly add, so the ranking holds; the count is found by bisection on the
    # measured cost of each candidate graph (7 runs for 69 activations).
    all_int8 = measured(0)
    low, high = 0, len(ranked)  # measured(high) fits by construction
    while low < high:
        mid = (low + high) // 2
        if measured(mid) <= SAFETY * budget_db:
            high = mid
        else:
            low = mid + 1
    wide = tuple(name for name, _, _ in ranked[:high])
    return WideChoice(wide, len(ranked), float(measured(high)), float(all_int8))
