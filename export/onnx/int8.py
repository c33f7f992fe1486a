"""Static int8 quantization of an ONNX graph with ONNX Runtime's quantization tools.

QDQ format: every Conv gets per-channel symmetric int8 weights and uint8 activations calibrated
with min-max on real photos (min-max keeps the full output range: a percentile calibration clips
highlights and the picture turns darker). ONNX Runtime fuses each DequantizeLinear -> op ->
QuantizeLinear unit into an integer kernel; the float input and output stay float at the edges.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from export.image_io import to_pixels
from export.optional import require
from toolkit.calibration import with_range_margin

# Ops ONNX Runtime's CPU provider runs on 8-bit data inside a QDQ unit; DepthToSpace and Concat only
# move bytes, so with Q/DQ around them they stay integer too.
QUANTIZED_OPS = ("Conv", "Add", "Concat", "Relu", "DepthToSpace", "Reshape", "Transpose")


def quantize_onnx(
    fp32: bytes,
    inputs: list[np.ndarray],
    image: bool = False,
    activation_bits: int = 8,
    wide: tuple[str, ...] = (),
    range_margin: bool | None = None,
    float_convs: tuple[str, ...] = (),
) -> bytes:
    """``fp32`` (a serialized model with one NCHW input, or with ``image`` one uint8 NHWC input) as
    a QDQ model with int8 weights and ``activation_bits`` activations (8, or 16: W8A16, in ONNX
    Runtime's com.microsoft Q/DQ ops, since opset 17 has no 16-bit ones), calibrated on ``inputs``
    (HxWx3 float32 crops at the model's input size). ``wide``: activations kept 16-bit in an 8-bit
    graph (``export/onnx/mixed.py``); ``range_margin`` (default: for 16-bit graphs) calibrates on
    harder crops too; ``float_convs``: Conv nodes left float, weights and all."""
    quantization = require("onnxruntime.quantization")

    def feed(crop: np.ndarray) -> np.ndarray:
        if image:
            return to_pixels(np.ascontiguousarray(crop.transpose(2, 0, 1))[None])
        return np.ascontiguousarray(crop.transpose(2, 0, 1))[None]

    sixteen = activation_bits == 16
    if sixteen if range_margin is None else range_margin:
        inputs = with_range_margin(inputs)  # 16-bit ranges can afford what the photos do not show
    uint16 = quantization.QuantType.QUInt16
    overrides = {name: [{"quant_type": uint16}] for name in wide}

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.pending = iter(inputs)

        def get_next(self) -> dict | None:
            crop = next(self.pending, None)
            return None if crop is None else {"lr": feed(crop)}

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(fp32)
        quantization.quantize_static(
            str(source),
            str(target),
            Reader(),
            quant_format=quantization.QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,
            activation_type=uint16 if sixteen else quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
            nodes_to_exclude=list(float_convs),
            extra_options={
                "ForceQuantizeNoInputCheck": True,
                "UseQDQContribOps": sixteen or bool(wide),
                "TensorQuantOverrides": overrides,
            },
        )
        return target.read_bytes()
