"""How a case is made ready to time: PyTorch eager (NCHW and channels-last) or an exported file.

A PCARN variant is timed in a format through the fp32 file that ``pcarn export`` writes
(``export.pipeline.export_file``), so what is benchmarked is what ships. The peers (SRResNet, RRDBNet)
and the ceiling conv are not shipped: they are converted plainly to ONNX and TFLite for timing.
``prepare`` returns a zero-argument callable that runs one forward pass on a fixed input, or raises
``Unavailable`` with the reason.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from benchmarks.runtimes import RUNTIMES, TORCH_RUNTIMES
from export.common import DeployHead, native_output_captured
from export.formats import FORMATS
from export.interface import ExportFormat
from export.options import QUANTIZED_PRECISIONS
from export.pipeline import export_file
from models import PCARN, variant_of
from toolkit.calibration import calibration_set
from toolkit.errors import PcarnError

RANDOM_WEIGHTS = "random weights (latency does not depend on them)"
LATENCY_CALIB_SAMPLES = 2  # int8 ranges for timing only


class Unavailable(Exception):
    """This runtime cannot run here; the message says why."""


class AtScale(nn.Module):
    """Any generator as ``forward(x)`` at a fixed scale, NCHW."""

    def __init__(self, model: nn.Module, scale: int) -> None:
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.scale)


def prepare_torch(
    model: nn.Module, scale: int, size: tuple[int, int], threads: int, channels_last: bool = False
) -> Callable[[], None]:
    torch.set_num_threads(threads)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = DeployHead(model, scale) if isinstance(model, PCARN) else AtScale(model, scale)
    net = net.eval().to(memory_format=fmt)
    x = torch.rand(1, 3, *size).contiguous(memory_format=fmt)

    def run() -> None:
        with torch.inference_mode():
            net(x)

    return run


def model_file(
    model: nn.Module,
    fmt: ExportFormat,
    scale: int,
    size: tuple[int, int],
    workdir: Path,
    *,
    in_channels: int = 3,
    provenance: dict | None = None,
    precision: str = "fp32",
    options: dict | None = None,
) -> Path:
    """The file to time: the exporter's own for PCARN models (int8 calibrated on a few crops of the
    default photos), a plain fp32 conversion otherwise."""
    if isinstance(model, PCARN):
        provenance = provenance or {"variant": variant_of(model.config) or "pcarn", "path": RANDOM_WEIGHTS}
        try:
            calibration = calibration_set() if precision in QUANTIZED_PRECISIONS else None
            return export_file(
                model,
                fmt,
                scale,
                precision,
                workdir,
                input_size=size,
                provenance=provenance,
                calibration=calibration,
                calib_samples=LATENCY_CALIB_SAMPLES,
                options=options,
            )
        except PcarnError as exc:
            raise Unavailable(str(exc)) from None
    if precision != "fp32":
        raise Unavailable(f"models that do not ship are timed in fp32 only, not {precision}")
    if fmt.plain is None:
        plain = " and ".join(f.name for f in FORMATS.values() if f.plain is not None)
        raise Unavailable(f"models that do not ship are timed in {plain} only, not {fmt.name}")
    path = workdir / f"plain_x{scale}{fmt.suffix}"
    with native_output_captured(), contextlib.redirect_stderr(io.StringIO()):
        fmt.plain(AtScale(model, scale).eval(), path, (1, in_channels, *size))
    return path


def prepare(
    runtime: str,
    model: nn.Module | Path,
    scale: int,
    size: tuple[int, int],
    threads: int,
    *,
    workdir: Path,
    in_channels: int = 3,
    precision: str = "fp32",
    options: dict | None = None,
) -> Callable[[], object]:
    """A timed forward pass of ``model`` (or of an exported file) in ``runtime``; a file it writes
    goes into ``workdir``, which the caller removes."""
    if runtime in TORCH_RUNTIMES:
        if precision != "fp32":
            raise Unavailable(f"{runtime} is timed in fp32; {precision} is timed in the exported files")
        if isinstance(model, Path):
            raise Unavailable(f"{model} is a file; torch runtimes time models")
        return prepare_torch(model, scale, size, threads, channels_last=runtime == "torch-cl")
    if runtime not in FORMATS:
        raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    fmt = FORMATS[runtime]
    ok, reason = fmt.runnable()
    if not ok:
        raise Unavailable(reason)
    if isinstance(model, Path):
        path = model
    else:
        path = model_file(
            model, fmt, scale, size, workdir, in_channels=in_channels, precision=precision, options=options
        )
    try:
        return fmt.timer(path, threads, size)
    except PcarnError as exc:
        raise Unavailable(str(exc)) from None
