"""Core ML: ML Program packages made by coremltools; checked and compared statically off Apple."""

from export.coreml import exporter
from export.coreml.checks import check_coreml
from export.interface import ExportFormat

FORMAT = ExportFormat.from_module(
    exporter,
    extra="coreml",
    export_modules=("coremltools",),
    runtime_module="coremltools",
    options=("image_input",),
    precisions=("fp32", "fp16", "int8"),
    check=check_coreml,
)

__all__ = ["FORMAT"]
