"""The runtimes the harness times, by name: PyTorch eager (NCHW and channels-last) and every export
format of ``export.formats``. Kept free of heavy imports: the CLI builds its choices from it."""

from __future__ import annotations

from export.formats import DEFAULT_FORMATS, FORMATS

TORCH_RUNTIMES = ("torch", "torch-cl")
RUNTIMES = (*TORCH_RUNTIMES, *FORMATS)
DEFAULT_RUNTIMES = (*TORCH_RUNTIMES, *DEFAULT_FORMATS)  # what a plain ``pcarn bench`` times


def runnable(runtime: str) -> tuple[bool, str]:
    """Whether ``runtime`` can run here, and why not (torch always can)."""
    return FORMATS[runtime].runnable() if runtime in FORMATS else (True, "")
