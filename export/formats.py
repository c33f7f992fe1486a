"""The table of export formats. Adding a format is one module that builds an ``ExportFormat``
(``export/interface.py``) plus one entry here; the pipeline, the CLI's choices and help, ``pcarn
bench``, ``pcarn profile`` and ``pcarn deploy`` all read this table."""

from __future__ import annotations

from pathlib import Path

from export import coreml, executorch, onnx, tflite
from export.interface import ExportFormat
from toolkit.errors import PcarnError

FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        onnx.FORMAT,
        coreml.FORMAT,
        tflite.FORMAT,
        executorch.FORMAT,
        executorch.VULKAN_FORMAT,
        executorch.COREML_FORMAT,
    )
}
DEFAULT_FORMATS = tuple(name for name, f in FORMATS.items() if f.default)
PRECISIONS = tuple(dict.fromkeys(p for f in FORMATS.values() for p in (*f.precisions, *f.extra_precisions)))


def get_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise PcarnError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    return FORMATS[name]


def find_format(path: str | Path) -> ExportFormat | None:
    """The format whose suffix ``path`` ends in (any case), or None."""
    name = Path(path).name.lower()  # UP.ONNX is an ONNX file too
    matches = [f for f in FORMATS.values() if name.endswith(f.suffix)]
    return max(matches, key=lambda f: len(f.suffix), default=None)  # .vulkan.pte before .pte


def format_of(path: Path) -> ExportFormat:
    """The format of an exported file, by its suffix."""
    fmt = find_format(path)
    if fmt is not None:
        return fmt
    suffixes = ", ".join(f.suffix for f in FORMATS.values())
    raise PcarnError(f"{path} is not an exported file: expected one of {suffixes}")
