"""ExecuTorch: one .pte per head lowered whole to XNNPACK, read back with the wheel's deserializer."""

from export.executorch import exporter
from export.executorch.checks import check_executorch
from export.interface import ExportFormat

FORMAT = ExportFormat.from_module(
    exporter,
    extra="executorch",
    export_modules=("executorch", "torchao"),
    runtime_module="executorch",
    options=("exit_at_lr",),
    precisions=("fp32",),
    check=check_executorch,
)

__all__ = ["FORMAT"]
