"""TFLite: litert-torch conversion of an NHWC head, run with ai-edge-litert; fp32, fp16, int8."""

from export.interface import ExportFormat
from export.tflite import exporter
from export.tflite.checks import check_tflite
from export.tflite.profile import tflite_profile

FORMAT = ExportFormat.from_module(
    exporter,
    extra="tflite",
    export_modules=("litert_torch", "ai_edge_quantizer", "ai_edge_litert"),
    runtime_module="ai_edge_litert",
    options=("exit_at_lr",),
    precisions=("fp32", "fp16", "int8"),
    check=check_tflite,
    profile=tflite_profile,
)

__all__ = ["FORMAT"]
