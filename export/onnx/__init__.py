"""ONNX: opset 17 graphs simplified with onnxsim, run in ONNX Runtime; fp32, fp16 and QDQ int8."""

from export.interface import ExportFormat
from export.onnx import exporter
from export.onnx.checks import check_onnx
from export.onnx.profile import onnx_profile

FORMAT = ExportFormat.from_module(
    exporter,
    extra="onnx",
    export_modules=("onnx", "onnxsim"),
    runtime_module="onnxruntime",
    options=("dynamic", "exit_at_lr", "shuffle"),
    precisions=("fp32", "fp16", "int8"),
    check=check_onnx,
    profile=onnx_profile,
)

__all__ = ["FORMAT"]
