"""Runtimes the harness times: PyTorch eager (NCHW and channels-last), ONNX Runtime, LiteRT/XNNPACK, Core ML.

Each ``prepare_*`` returns a zero-argument callable that runs one forward pass on a fixed 720p-output
input, with the thread count fixed, or raises ``Unavailable`` with the reason.
"""

from __future__ import annotations

import contextlib
import io
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.common import DeployHead, native_output_captured
from models import PCARN


class Unavailable(Exception):
    """This runtime cannot run here; the message says why."""


class _Forward(nn.Module):
    """Any generator as forward(x) at a fixed scale, in NCHW or NHWC."""

    def __init__(self, model: nn.Module, scale: int, nhwc: bool = False) -> None:
        super().__init__()
        self.model, self.scale, self.nhwc = model, scale, nhwc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            return self.model(x.permute(0, 3, 1, 2), self.scale).permute(0, 2, 3, 1)
        return self.model(x, self.scale)


def _deployable(model: nn.Module, scale: int) -> nn.Module:
    return DeployHead(model, scale).eval() if isinstance(model, PCARN) else _Forward(model, scale).eval()


def prepare_torch(
    model: nn.Module, scale: int, size: tuple[int, int], threads: int, channels_last: bool = False
) -> Callable[[], None]:
    torch.set_num_threads(threads)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = _deployable(model, scale).to(memory_format=fmt)
    x = torch.rand(1, 3, *size).contiguous(memory_format=fmt)

    def run() -> None:
        with torch.inference_mode():
            net(x)

    return run


def onnx_file(
    model: nn.Module, scale: int, size: tuple[int, int], workdir: Path, in_channels: int = 3
) -> Path:
    """The fp32 ONNX graph the harness times (opset 17, fixed shape)."""
    path = workdir / f"bench_x{scale}.onnx"
    net = _deployable(model, scale)
    with native_output_captured(), contextlib.redirect_stderr(io.StringIO()):
        torch.onnx.export(
            net,
            (torch.rand(1, in_channels, *size),),
            str(path),
            input_names=["lr"],
            output_names=["sr"],
            opset_version=17,
            dynamo=False,
        )
    return path


def tflite_file(
    model: nn.Module, scale: int, size: tuple[int, int], workdir: Path, in_channels: int = 3
) -> Path:
    """The fp32 NHWC ``.tflite`` the harness times (PCARN heads with native depth-to-space)."""
    path = workdir / f"bench_x{scale}.tflite"
    if isinstance(model, PCARN):
        from export.tflite_format import export_plain

        with native_output_captured():
            export_plain(DeployHead(model, scale), path, size)
        return path
    import litert_torch

    with native_output_captured():
        litert_torch.convert(
            _Forward(model, scale, nhwc=True).eval(), (torch.rand(1, *size, in_channels),)
        ).export(str(path))
    return path


def prepare_onnx(
    model: nn.Module | Path,
    scale: int,
    size: tuple[int, int],
    threads: int,
    workdir: Path,
    in_channels: int = 3,
) -> Callable[[], None]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise Unavailable("onnxruntime is not installed (extra: onnx)") from None
    path = model if isinstance(model, Path) else onnx_file(model, scale, size, workdir, in_channels)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    shape = [
        d if isinstance(d, int) else s
        for d, s in zip(session.get_inputs()[0].shape, (1, in_channels, *size), strict=True)
    ]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    return lambda: session.run(None, {name: x})


def prepare_tflite(
    model: nn.Module | Path,
    scale: int,
    size: tuple[int, int],
    threads: int,
    workdir: Path,
    in_channels: int = 3,
) -> Callable[[], None]:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise Unavailable("ai-edge-litert is not installed (extra: tflite)") from None
    path = model if isinstance(model, Path) else tflite_file(model, scale, size, workdir, in_channels)
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(
        detail["index"], np.random.default_rng(0).random(detail["shape"], dtype=np.float32)
    )
    return interpreter.invoke


def prepare_coreml(model, scale, size, threads, workdir) -> Callable[[], None]:
    if platform.system() != "Darwin":
        raise Unavailable("Core ML runs only on macOS")
    raise Unavailable("Core ML timing is not implemented yet")


RUNTIMES = ("torch", "torch-cl", "onnx", "tflite", "coreml")


def prepare(runtime: str, model, scale: int, size: tuple[int, int], threads: int) -> Callable[[], None]:
    workdir = Path(tempfile.mkdtemp(prefix="pcarn-bench-"))
    if runtime == "torch":
        return prepare_torch(model, scale, size, threads)
    if runtime == "torch-cl":
        return prepare_torch(model, scale, size, threads, channels_last=True)
    if runtime == "onnx":
        return prepare_onnx(model, scale, size, threads, workdir)
    if runtime == "tflite":
        return prepare_tflite(model, scale, size, threads, workdir)
    if runtime == "coreml":
        return prepare_coreml(model, scale, size, threads, workdir)
    raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
