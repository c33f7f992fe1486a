"""ExecuTorch programs lowered whole to a phone accelerator instead of XNNPACK: Vulkan (Android GPUs)
and Core ML (Apple's Neural Engine and GPU), one ``.vulkan.pte`` / ``.coreml.pte`` per head.

Neither backend runs on this machine, so these files are checked from the file (every op of
``forward`` inside the one expected delegate, nothing left to portable CPU kernels, the metadata) and
compared statically: the exact program handed to the partitioner, run in PyTorch, against the head.
The model's buffers (the mean shift) become frozen parameters first: Core ML's partitioner reads
weights as parameters and stops at a lifted buffer (``KeyError: 'input_mean'``).
"""

from __future__ import annotations

import collections
import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.checks import GraphReport, counted
from export.common import DeployHead
from export.executorch.exporter import input_shape, lowered, read_metadata
from export.executorch.file import PTEFile
from export.job import ExportJob
from export.optional import require
from toolkit.images import SAMPLE_PHOTO, read_image

BACKENDS = {  # name -> (partitioner module, class, the delegate id the .pte records)
    "vulkan": (
        "executorch.backends.vulkan.partitioner.vulkan_partitioner",
        "VulkanPartitioner",
        "VulkanBackend",
    ),
    "coreml": ("executorch.backends.apple.coreml.partition", "CoreMLPartitioner", "CoreMLBackend"),
}
PARITY_ABS = 1e-4


def frozen(net: nn.Module) -> nn.Module:
    """A copy whose buffers are frozen parameters (same values, same outputs)."""
    net = copy.deepcopy(net).eval()
    for module in net.modules():
        for name, buffer in list(module.named_buffers(recurse=False)):
            delattr(module, name)
            module.register_parameter(name, nn.Parameter(buffer.clone(), requires_grad=False))
    return net


def program_for(net: nn.Module, size: tuple[int, int]) -> torch.export.ExportedProgram:
    return torch.export.export(frozen(net), (torch.rand(1, 3, *size),))


def export_to(job: ExportJob, backend: str) -> Path:
    module, name, _ = BACKENDS[backend]
    partitioner = getattr(require(module), name)()
    program = job.reuse((backend, job.form), lambda: program_for(job.graph, job.input_size))
    job.path.write_bytes(lowered(program, {**job.metadata, "backend": backend}, partitioner))
    return job.path


def check_lowered(path: Path, backend: str):
    """Graph checks of a lowered file: everything of ``forward`` in the one expected delegate."""
    pte = PTEFile.read(path)
    expected = BACKENDS[backend][2]
    delegates, outside = pte.delegate_ids(), pte.kernel_calls()
    report = GraphReport({f"{d} delegate": delegates.count(d) for d in dict.fromkeys(delegates)})
    report.add(
        "delegated",
        delegates == [expected] and not outside,
        f"forward is {len(delegates)} delegate(s) ({', '.join(delegates) or 'none'}; expected one "
        f"{expected}); ops left on portable kernels: {counted(collections.Counter(outside))}",
    )
    report.add("metadata", pte.metadata().get("backend") == backend, "the backend is recorded")
    return report


def static_parity(head: DeployHead, path: Path, backend: str) -> dict:
    """The program the partitioner was given, run in PyTorch on a crop of a real photo, against
    the head: the graph is the model; the backend's own arithmetic needs its device."""
    size = tuple(PTEFile.read(path).input_shape()[2:])
    rgb = read_image(SAMPLE_PHOTO).rgb
    crop = np.ascontiguousarray(rgb[: size[0], : size[1]].transpose(2, 0, 1))[None]
    x = torch.from_numpy(
        np.pad(crop, ((0, 0), (0, 0), (0, size[0] - crop.shape[2]), (0, size[1] - crop.shape[3])))
    )
    with torch.no_grad():
        expected = head(x)
        got = program_for(head, size).module()(x)
    max_abs = float((got - expected).abs().max())
    return {
        "ran": False,
        "passed": max_abs <= PARITY_ABS,
        "max_abs": max_abs,
        "rule": f"the program lowered to {backend}, run in PyTorch, against the head on a real photo crop: "
        f"max abs {max_abs:.1e} <= {PARITY_ABS:g}; the {backend} backend itself runs only on its device",
    }


class LoweredFormat:
    """The exporter functions of one backend's ``.pte`` files (``ExportFormat.declare`` names them
    as ``export.executorch.lowered:VULKAN``): one class instead of a module per backend."""

    def __init__(self, backend: str, platform: str) -> None:
        self.backend = backend
        self.platform = platform

    def export(self, job: ExportJob) -> Path:
        return export_to(job, self.backend)

    def platform_limit(self) -> str | None:
        return self.platform

    def runner(self, path: Path, threads: int | None = None):
        raise RuntimeError(self.platform)

    def timed_session(self, path: Path, threads: int, x):
        raise RuntimeError(self.platform)

    def check(self, path: Path, exp, precision: str):
        return check_lowered(path, self.backend)

    def static_parity(self, head: DeployHead, path: Path, precision: str, siblings: dict) -> dict:
        return static_parity(head, path, self.backend)

    read_metadata = staticmethod(read_metadata)  # the XNNPACK file's readers read these too
    input_shape = staticmethod(input_shape)


VULKAN = LoweredFormat(
    "vulkan",
    "Vulkan .pte files run on an Android (or desktop) Vulkan GPU through ExecuTorch's Vulkan backend, "
    "which this build lacks",
)
COREML = LoweredFormat(
    "coreml", "Core ML .pte files run on Apple devices through ExecuTorch's Core ML backend"
)
