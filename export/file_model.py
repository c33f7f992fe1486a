"""An exported file used like a model: ``pcarn eval --model FILE`` and ``pcarn upscale --model FILE``
run ``.onnx`` / ``.tflite`` files in their own runtime on whole photos.

A file has one scale head and (unless exported ``--dynamic``) one fixed input size, so a photo is
cut into windows of exactly that size with the receptive-field overlap of ``pcarn upscale``
(``toolkit.inference.upscale_windows``): what users judge is what the file computes on a phone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.formats import format_of
from export.interface import ExportFormat
from toolkit.errors import PcarnError
from toolkit.inference import upscale_windows
from toolkit.tiling import DEFAULT_OVERLAP


@dataclass
class FileModel:
    """One exported file, loaded once in its runtime, upscaling whole photos window by window."""

    path: Path
    fmt: ExportFormat
    metadata: dict
    scale: int
    window: tuple[int, int] | None  # None: dynamic input, whole photos at once
    overlap: int
    run_nchw: Callable[[np.ndarray], np.ndarray]  # the format's runner: lr_nchw -> sr_nchw

    @classmethod
    def open(cls, path: str | Path, threads: int | None = None) -> FileModel:
        path = Path(path)
        if not path.exists():
            raise PcarnError(f"exported file not found: {path}")
        fmt = format_of(path)
        ok, reason = fmt.runnable()
        if not ok:
            raise PcarnError(f"{path} cannot run here: {reason}")
        metadata, _ = fmt.inspect(path)
        if "scale" not in metadata:
            raise PcarnError(f"{path} has no pcarn-toolkit metadata (scale); export it with pcarn export")
        size = fmt.input_size(path)
        radius = metadata.get("receptive_radius_lr")
        overlap = math.ceil(float(radius)) if radius else DEFAULT_OVERLAP
        return cls(
            path,
            fmt,
            metadata,
            int(metadata["scale"]),
            None if 0 in size else size,
            overlap,
            fmt.runner(path, threads),
        )

    @property
    def scales(self) -> tuple[int, ...]:
        return (self.scale,)

    @property
    def precision(self) -> str:
        return self.metadata.get("precision", "fp32")

    def require_scale(self, scale: int) -> None:
        if scale != self.scale:
            raise PcarnError(f"{self.path} is the x{self.scale} head; it cannot upscale x{scale}")

    def _window(self, lr_hwc: np.ndarray) -> np.ndarray:
        return self.run_nchw(np.ascontiguousarray(lr_hwc.transpose(2, 0, 1))[None])[0].transpose(1, 2, 0)

    def upscale(self, rgb: np.ndarray, scale: int, *, progress: bool = False) -> np.ndarray:
        """Float RGB HxWx3 in [0, 1] -> float SR, through the file's own runtime."""
        self.require_scale(scale)
        rgb = rgb.astype(np.float32, copy=False)
        if self.window is None:
            return self._window(rgb)
        return upscale_windows(self._window, rgb, scale, self.window, self.overlap, progress=progress)
