"""Static int8 quantization of an ONNX graph with ONNX Runtime's quantization tools.

QDQ format: every Conv gets per-channel symmetric int8 weights and uint8 activations calibrated
with min-max on real photos (min-max keeps the full output range: a percentile calibration clips
highlights and the picture turns darker). ONNX Runtime fuses each DequantizeLinear -> op ->
QuantizeLinear unit into an integer kernel; the float input and output stay float at the edges.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np

from export.image_io import to_pixels
from export.kept_ranges import Ranges, arrays_digest
from export.optional import require
from toolkit.calibration import with_range_margin
from toolkit.errors import PcarnError

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
    ranges: Ranges | None = None,
) -> bytes:
    """``fp32`` (a serialized model with one NCHW input, or with ``image`` one uint8 NHWC input) as
    a QDQ model with int8 weights and ``activation_bits`` activations (8, or 16: W8A16, in ONNX
    Runtime's com.microsoft Q/DQ ops, since opset 17 has no 16-bit ones), calibrated on ``inputs``
    (HxWx3 float32 crops at the model's input size). ``wide``: activations kept 16-bit in an 8-bit
    graph (``export/onnx/mixed.py``); ``range_margin`` (default: for 16-bit graphs) calibrates on
    harder crops too; ``float_convs``: Conv nodes left float, weights and all; ``ranges``: earlier
    runs' calibrations (``export/kept_ranges.py``), kept as ONNX Runtime's calibration cache."""
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

    def quantize(source: Path, target: Path, cache: Path | None) -> None:
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
            calibration_cache_path=None if cache is None else str(cache),
        )

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(fp32)
        if ranges is None:
            quantize(source, target, None)
            return target.read_bytes()
        cache = Path(tmp) / "ranges.json"

        def measure() -> dict:  # calibrates, quantizes and writes the cache
            quantize(source, target, cache)
            return _compact(cache)

        graph = (hashlib.sha256(fp32).hexdigest(), image, activation_bits, tuple(wide), tuple(float_convs))
        key = ("onnx-min-max", *graph, arrays_digest(inputs), QUANTIZED_OPS)
        stored = ranges(key, measure)
        if not target.exists():  # recalled: the cache stands in for the calibration
            _write_cache(stored, cache)
            quantize(source, target, cache)
        return target.read_bytes()


def _compact(cache: Path) -> dict[str, list[float]]:
    """ONNX Runtime's min-max calibration cache as {tensor: [lowest, highest]}."""
    calibrate = require("onnxruntime.quantization.calibrate")
    ranges = calibrate.load_tensors_data(cache)
    return {name: [_number(d.lowest), _number(d.highest)] for name, d in ranges.data.items()}


def _number(value) -> float:
    values = np.asarray(value, dtype=np.float32).reshape(-1)
    if values.size != 1:
        raise PcarnError(f"expected one calibrated value per tensor, got {values.size}")
    return float(values[0])


def _write_cache(ranges: dict[str, list[float]], cache: Path) -> None:
    """``_compact``'s ranges back as ONNX Runtime's calibration cache (float32, as it writes them)."""
    calibrate = require("onnxruntime.quantization.calibrate")
    data = {
        name: calibrate.TensorData(lowest=np.array([low], np.float32), highest=np.array([high], np.float32))
        for name, (low, high) in ranges.items()
    }
    method = require("onnxruntime.quantization").CalibrationMethod.MinMax
    calibrate.save_tensors_data(calibrate.TensorsData(method, data), cache)
