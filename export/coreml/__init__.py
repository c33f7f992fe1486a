"""Core ML: ML Program packages made by coremltools; checked and compared statically off Apple."""

from export.interface import ExportFormat

FORMAT = ExportFormat.declare(
    "export.coreml.exporter",
    has=("platform_limit", "static_parity"),
    check="export.coreml.checks:check_coreml",
    accelerators="export.coreml.accelerators:coreml_accelerators",
    name="coreml",
    suffix=".mlpackage",
    layout="NCHW",
    extra="coreml",
    export_modules=("coremltools",),
    runtime_module="coremltools",
    options=("dynamic", "io", "int8_budget"),
    precisions=("fp32", "fp16", "int8"),
)

__all__ = ["FORMAT"]
