"""ExecuTorch lowered whole to vulkan (``export/executorch/lowered.py``): the format's functions."""

from __future__ import annotations

from pathlib import Path

from export.common import DeployHead
from export.executorch import lowered
from export.executorch.exporter import input_shape, read_metadata  # noqa: F401 - the format's readers
from export.job import ExportJob

BACKEND = "vulkan"


def export(job: ExportJob) -> Path:
    return lowered.export_to(job, BACKEND)


def platform_limit() -> str | None:
    return (
        "Vulkan .pte files run on an Android (or desktop) Vulkan GPU through ExecuTorch's Vulkan "
        "backend, which this build lacks"
    )


def runner(path: Path, threads: int | None = None):
    raise RuntimeError(platform_limit())


def timed_session(path: Path, threads: int, x):
    raise RuntimeError(platform_limit())


def check(path: Path, exp, precision: str):
    return lowered.check_lowered(path, BACKEND)


def static_parity(head: DeployHead, path: Path, precision: str, siblings: dict) -> dict:
    return lowered.static_parity(head, path, BACKEND)
