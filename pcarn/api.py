"""The Python API, the same path the ``pcarn`` command takes: open any model by name, checkpoint or
exported file, and upscale images with it.

A checkpoint (a registry name, our ``.safetensors`` or the authors' ``.pth``) opens as a PCARN in
PyTorch; an exported ``.onnx``, ``.tflite`` or ``.pte`` opens in its own runtime, run in windows of its
input size (``export.file_model``). Both come back as one descriptor, ``Opened``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from export.file_model import FileModel
from export.formats import find_format
from models import PCARN
from toolkit.images import DecodedImage, compose, decode, read_image, to_uint8, upscale_alpha
from toolkit.inference import upscale_rgb
from toolkit.tiling import DEFAULT_OVERLAP, DEFAULT_TILE
from toolkit.weights.loading import check_variant, load_any, load_model


def is_exported_file(name: str | os.PathLike) -> bool:
    return find_format(name) is not None


@dataclass
class Opened:
    """A model ready to run, whichever kind: ``model`` is a PCARN (PyTorch) or a FileModel."""

    model: PCARN | FileModel
    label: str  # the variant, or variant, format and precision of a file
    path: str
    provenance: dict  # what a report or an exported file records of it
    scales: tuple[int, ...]
    note: str | None = None  # e.g. a shipped name that fell back to the authors' weights


def open_model(
    name: str | os.PathLike, scales: tuple[int, ...] = (), *, variant: str | None = None, quiet: bool = True
) -> Opened:
    """``name`` opened, refusing a scale it has no head for (and, for checkpoints, another variant)."""
    name = str(name)
    if is_exported_file(name):
        file_model = FileModel.open(name)
        for scale in scales:
            file_model.require_scale(scale)
        provenance = {
            "path": name,
            "variant": file_model.metadata.get("variant"),
            "format": file_model.fmt.name,
            "precision": file_model.precision,
            "windows": None if file_model.window is None else list(file_model.window),
            "window_overlap": file_model.overlap,
        }
        label = f"{file_model.metadata.get('variant', '?')} {file_model.fmt.name} {file_model.precision}"
        return Opened(file_model, label, name, provenance, file_model.scales)
    loaded = load_any(name, quiet=quiet)
    check_variant(loaded.model, variant, loaded.path)
    for scale in scales:
        loaded.require_scale(scale)
    return Opened(loaded.model, loaded.variant, loaded.path, loaded.provenance, loaded.scales, loaded.note)


def _network(model: PCARN | FileModel | Opened | str | os.PathLike) -> PCARN | FileModel:
    if isinstance(model, Opened):
        return model.model
    if isinstance(model, (PCARN, FileModel)):
        return model
    return open_model(model).model


def upscale(
    image: Image.Image | str | os.PathLike,
    scale: int,
    model: PCARN | FileModel | Opened | str | os.PathLike = "pcarn-m",
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    progress: bool = False,
) -> Image.Image:
    """Super-resolve a Pillow image or an image file with a model, a checkpoint or an exported file;
    alpha is upscaled bicubic and re-attached."""
    decoded = read_image(image) if isinstance(image, (str, os.PathLike)) else decode(image)
    return upscale_decoded(decoded, scale, _network(model), tile=tile, overlap=overlap, progress=progress)


def upscale_decoded(
    decoded: DecodedImage,
    scale: int,
    model: PCARN | FileModel,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    progress: bool = False,
) -> Image.Image:
    """The network (or an exported file, in its own windows) on RGB, bicubic on alpha, back in the
    input's colour kind (8-bit, rounded)."""
    if isinstance(model, PCARN):
        rgb = upscale_rgb(model, decoded.rgb, scale, tile=tile, overlap=overlap, progress=progress)
    else:
        model.require_scale(scale)
        rgb = to_uint8(model.upscale(decoded.rgb, scale, progress=progress))
    alpha = None if decoded.alpha is None else to_uint8(upscale_alpha(decoded.alpha, scale))
    return compose(rgb, alpha, decoded.gray)


def upscale_array(
    rgb: np.ndarray, scale: int, model: PCARN | FileModel | Opened | str = "pcarn-m", **options
) -> np.ndarray:
    """Float RGB HxWx3 in [0, 1] in, uint8 RGB out (rounded, clamped)."""
    network = _network(model)
    if isinstance(network, PCARN):
        return upscale_rgb(network, rgb, scale, **options)
    return to_uint8(network.upscale(rgb, scale))


__all__ = [
    "Opened",
    "is_exported_file",
    "load_model",
    "open_model",
    "upscale",
    "upscale_array",
    "upscale_decoded",
]
