"""TFLite: litert-torch conversion of an NHWC head, run with ai-edge-litert; fp32, fp16, int8."""

from export.interface import ExportFormat

FORMAT = ExportFormat.declare(
    "export.tflite.exporter",
    has=("plain",),
    check="export.tflite.checks:check_tflite",
    accelerators="export.tflite.accelerators:tflite_accelerators",
    profile="export.tflite.profile:tflite_profile",
    name="tflite",
    suffix=".tflite",
    layout="NHWC",
    extra="tflite",
    export_modules=("litert_torch", "ai_edge_quantizer", "ai_edge_litert"),
    runtime_module="ai_edge_litert",
    options=("dynamic", "exit_at_lr", "io", "int8_budget"),
    precisions=("fp32", "fp16", "int8"),
)

__all__ = ["FORMAT"]
