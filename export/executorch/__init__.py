"""ExecuTorch: one .pte per head lowered whole to XNNPACK, read back with the wheel's deserializer."""

from export.interface import ExportFormat

FORMAT = ExportFormat.declare(
    "export.executorch.exporter",
    check="export.executorch.checks:check_executorch",
    accelerators="export.executorch.accelerators:executorch_accelerators",
    name="executorch",
    suffix=".pte",
    layout="NCHW",
    extra="executorch",
    export_modules=("executorch", "torchao"),
    runtime_module="executorch",
    options=("dynamic", "exit_at_lr", "io", "int8_budget"),
    precisions=("fp32",),
    # named only: each head's float choice and calibration add minutes to a default export
    extra_precisions=("int8",),
)


# The same head lowered whole to a phone accelerator (``export/executorch/lowered.py``); not written
# unless asked for (--formats), since neither runs here.
VULKAN_FORMAT = ExportFormat.declare(
    "export.executorch.lowered:VULKAN",
    has=("platform_limit", "static_parity"),
    check="export.executorch.lowered:VULKAN.check",
    accelerators="export.executorch.accelerators:vulkan_accelerators",
    name="executorch-vulkan",
    suffix=".vulkan.pte",
    layout="NCHW",
    extra="executorch",
    export_modules=("executorch",),
    runtime_module="executorch",
    options=(),
    precisions=("fp32",),
    default=False,
)
COREML_FORMAT = ExportFormat.declare(
    "export.executorch.lowered:COREML",
    has=("platform_limit", "static_parity"),
    check="export.executorch.lowered:COREML.check",
    accelerators="export.executorch.accelerators:coreml_pte_accelerators",
    name="executorch-coreml",
    suffix=".coreml.pte",
    layout="NCHW",
    extra="executorch",
    export_modules=("executorch", "coremltools"),
    runtime_module="executorch",
    options=(),
    precisions=("fp16",),
    default=False,
)
__all__ = ["COREML_FORMAT", "FORMAT", "VULKAN_FORMAT"]
