"""The small Python API that the CLI itself is built on."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from models import PCARN
from toolkit.images import DecodedImage, compose, decode, read_image, to_uint8, upscale_alpha
from toolkit.inference import DEFAULT_OVERLAP, DEFAULT_TILE, upscale_rgb
from toolkit.loading import load_model


def upscale(
    image: Image.Image | str | os.PathLike,
    scale: int,
    model: PCARN | str | os.PathLike = "pcarn-m",
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    progress: bool = False,
) -> Image.Image:
    """Super-resolve a Pillow image or an image file; alpha is upscaled bicubic and re-attached."""
    net = model if isinstance(model, PCARN) else load_model(model)
    decoded = read_image(image) if isinstance(image, (str, os.PathLike)) else decode(image)
    return upscale_decoded(decoded, scale, net, tile=tile, overlap=overlap, progress=progress)


def upscale_decoded(
    decoded: DecodedImage,
    scale: int,
    model: PCARN,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    progress: bool = False,
) -> Image.Image:
    """The network (or an exported file: ``export.file_model``, in its own windows) on RGB, bicubic
    on alpha, back in the input's colour kind (8-bit, rounded)."""
    if isinstance(model, PCARN):
        rgb = upscale_rgb(model, decoded.rgb, scale, tile=tile, overlap=overlap, progress=progress)
    else:
        rgb = to_uint8(model.upscale(decoded.rgb, scale, progress=progress))
    alpha = None if decoded.alpha is None else to_uint8(upscale_alpha(decoded.alpha, scale))
    return compose(rgb, alpha, decoded.gray)


def upscale_array(rgb: np.ndarray, scale: int, model: PCARN | str = "pcarn-m", **options) -> np.ndarray:
    """Float RGB HxWx3 in [0, 1] in, uint8 RGB out (rounded, clamped)."""
    net = model if isinstance(model, PCARN) else load_model(model)
    return upscale_rgb(net, rgb, scale, **options)


__all__ = ["load_model", "upscale", "upscale_array", "upscale_decoded"]
