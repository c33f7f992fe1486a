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
    options=("exit_at_lr",),
    precisions=("fp32",),
)

__all__ = ["FORMAT"]
