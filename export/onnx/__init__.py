"""ONNX: opset 17 graphs simplified with onnxsim, run in ONNX Runtime; fp32, fp16 and QDQ int8."""

from export.interface import ExportFormat

FORMAT = ExportFormat.declare(
    "export.onnx.exporter",
    has=("plain",),
    check="export.onnx.checks:check_onnx",
    accelerators="export.onnx.accelerators:onnx_accelerators",
    profile="export.onnx.profile:onnx_profile",
    name="onnx",
    suffix=".onnx",
    layout="NCHW",
    extra="onnx",
    export_modules=("onnx", "onnxsim"),
    runtime_module="onnxruntime",
    options=("dynamic", "exit_at_lr", "shuffle", "io", "int8_budget"),
    precisions=("fp32", "fp16", "int8"),
    extra_precisions=("w8a16",),  # int8 weights, 16-bit activations: what NPUs run natively
)

__all__ = ["FORMAT"]
