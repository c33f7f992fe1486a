"""Image in, image out (``pcarn export --io image``): the file takes and returns 8-bit RGB, NHWC
(the layout of a bitmap or camera frame), with the 1/255 scaling, clamping and rounding inside the
graph, so an app hands over pixels and gets pixels back with nothing to get wrong around the model.

Core ML declares image types instead (``export/coreml/exporter.py``): its pixel buffer conversion
does the scaling and layout, and the graph rounds and clamps to [0, 255] before it.

Every runner keeps the toolkit's one interface (NCHW float in [0, 1] in and out): ``from_images``
wraps a file's own call, so parity, ``pcarn eval`` and ``pcarn upscale`` run image files unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

TENSOR, IMAGE = "tensor", "image"  # the choices of export.options' --io
MAX_LEVEL_ERROR = 1  # parity of an image file: its pixels against PyTorch's rounded output


def rounded_levels(y: torch.Tensor) -> torch.Tensor:
    """Float RGB in [0, 1] (up to overshoot) -> the nearest of the 256 levels, still float."""
    return torch.round(torch.clamp(y, 0.0, 1.0) * 255.0)


class ImageIO(nn.Module):
    """An NCHW float graph with uint8 RGB NHWC input and output; its edge permutes are the ones
    converters fold into their own layout (TFLite) or keep as one transpose each (ONNX, ExecuTorch)."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.inner = graph

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return rounded_levels(self.inner(x)).permute(0, 2, 3, 1).to(torch.uint8)


class LevelsOut(nn.Module):
    """An NCHW float graph whose output is rounded and clamped to [0, 255] (Core ML's image output)."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.inner = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rounded_levels(self.inner(x))


def sample_pixels(size: tuple[int, int]) -> torch.Tensor:
    """A uint8 NHWC input of ``size`` to trace or export with."""
    return torch.randint(0, 256, (1, *size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def to_pixels(lr_nchw: np.ndarray) -> np.ndarray:
    """NCHW float in [0, 1] -> NHWC uint8, rounded as ``pcarn upscale`` writes images."""
    return np.ascontiguousarray(
        (np.clip(lr_nchw.transpose(0, 2, 3, 1), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    )


def from_pixels(sr_nhwc: np.ndarray) -> np.ndarray:
    """NHWC uint8 -> NCHW float in [0, 1]."""
    return np.ascontiguousarray(sr_nhwc.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


def from_images(call: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """A file's own call (NHWC uint8 in and out) as a runner (NCHW float in [0, 1] in and out)."""
    return lambda lr_nchw: from_pixels(np.asarray(call(to_pixels(lr_nchw))))


def image_metadata() -> dict:
    """What an image file's metadata says of its input and output."""
    return {
        "io": IMAGE,
        "input_layout": "NHWC",
        "output_layout": "NHWC",
        "input_range": "RGB uint8 [0, 255]",
        "output_range": "RGB uint8 [0, 255], clamped and rounded inside the graph",
    }


def is_image_file(metadata: dict) -> bool:
    return metadata.get("io") == IMAGE
