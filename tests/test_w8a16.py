"""``--precision w8a16``: int8 weights and 16-bit activations for ONNX (what NPUs run natively),
written only when asked for, checked and judged by its PSNR-Y cost like int8."""

from __future__ import annotations

import collections

import pytest
from PIL import Image

from export.formats import FORMATS
from export.pipeline import export_all
from models import build_model
from tests.conftest import deterministic_weights
from toolkit.errors import PcarnError
from toolkit.images import SAMPLE_PHOTO

onnx = pytest.importorskip("onnx")


def test_w8a16_onnx_passes_with_16_bit_activations(tmp_path):
    val = tmp_path / "val"  # one small photo: the cost is measured, not the budget's margin
    val.mkdir()
    Image.open(SAMPLE_PHOTO).convert("RGB").resize((160, 120)).save(val / "rocket.png")
    manifest = export_all(
        deterministic_weights(build_model("pcarn-test")),
        tmp_path / "out",
        formats=["onnx"],
        scales=[2],
        precisions=["w8a16"],
        input_size=(24, 32),
        provenance={"variant": "pcarn-test"},
        progress=False,
        calib_samples=2,
        val=val,
    )
    (entry,) = manifest["files"]
    assert manifest["all_passed"], entry
    assert entry["checks"]["integer_convs"]["passed"] and "quantization" in entry["parity"]
    graph = onnx.load(str(tmp_path / "out" / "pcarn-test_x2_w8a16.onnx")).graph
    kinds = collections.Counter((n.op_type, n.domain) for n in graph.node if n.op_type.endswith("Linear"))
    assert kinds[("QuantizeLinear", "com.microsoft")] > 0 and set(kinds) <= {
        ("QuantizeLinear", "com.microsoft"),
        ("DequantizeLinear", "com.microsoft"),
    }
    zero_points = {i.data_type for i in graph.initializer if i.name.endswith("zero_point") and not i.dims}
    assert onnx.TensorProto.UINT16 in zero_points  # the activations' (weights' are int8)


def test_w8a16_is_written_only_when_named():
    onnx_format = FORMATS["onnx"]
    assert "w8a16" not in onnx_format.precisions and onnx_format.takes("w8a16")
    with pytest.raises(PcarnError, match="tflite does not take w8a16"):
        export_all(
            build_model("pcarn-test"),
            "unused",
            formats=["onnx", "tflite"],
            scales=[2],
            precisions=["w8a16"],
            progress=False,
        )
