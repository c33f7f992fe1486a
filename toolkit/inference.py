"""Tiled inference: overlapping LR tiles keep memory bounded and equal the untiled result.

Each tile is run with ``overlap`` extra LR pixels of real context on every side and only its centre
is kept. When the overlap covers the network's receptive radius, every kept output pixel sees exactly
what it would see in one full pass, so tiling changes nothing beyond float rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm import tqdm

from models import PCARN
from toolkit.errors import PcarnError
from toolkit.images import to_uint8
from toolkit.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, tile_grid


def receptive_radius(model: PCARN, scale: int) -> float:
    """How many LR pixels away an output pixel can see (3x3 convs add one pixel at their resolution)."""
    config = model.config
    radius = 1.0 + 2 * config.blocks * config.units  # entry conv and two 3x3 convs per unit
    resolution = 1
    for r in model.heads[model.head_name(scale)].factors:
        radius += 1.0 / resolution  # the head conv runs before its pixel shuffle
        resolution *= r
    return radius + 1.0 / resolution  # exit conv at HR


def _run(model: PCARN, lr: np.ndarray, scale: int, device: torch.device) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)))[None].to(device)
    with torch.inference_mode():
        y = model(x, scale)
    return y[0].permute(1, 2, 0).float().cpu().numpy()


def upscale_rgb(
    model: PCARN,
    rgb: np.ndarray,
    scale: int,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    progress: bool = False,
    as_uint8: bool = True,
) -> np.ndarray:
    """Super-resolve float RGB HxWx3 in [0, 1]; ``tile=0`` runs the whole image at once."""
    model.head_name(scale)  # validates the scale before any work
    if tile < 0 or overlap < 0:
        raise PcarnError("--tile and --tile-overlap must be zero or positive")
    h, w, _ = rgb.shape
    device = next(model.parameters()).device
    rgb = rgb.astype(np.float32, copy=False)
    if tile == 0 or (h <= tile and w <= tile):
        out = _run(model, rgb, scale, device)
        return to_uint8(out) if as_uint8 else out
    result = np.empty((h * scale, w * scale, 3), dtype=np.uint8 if as_uint8 else np.float32)
    tiles = list(tile_grid(h, w, tile))
    for y0, y1, x0, x1 in tqdm(tiles, desc=f"x{scale} tiles", unit="tile", disable=not progress, leave=False):
        py0, py1 = max(0, y0 - overlap), min(h, y1 + overlap)
        px0, px1 = max(0, x0 - overlap), min(w, x1 + overlap)
        out = _run(model, rgb[py0:py1, px0:px1], scale, device)
        oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
        core = out[oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale]
        result[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = to_uint8(core) if as_uint8 else core
    return result


def upscale_windows(
    run: Callable[[np.ndarray], np.ndarray],
    rgb: np.ndarray,
    scale: int,
    window: tuple[int, int],
    overlap: int,
    *,
    progress: bool = False,
) -> np.ndarray:
    """Super-resolve float RGB HxWx3 with a network of fixed input size ``window`` (an exported
    file): each window keeps its centre, ``overlap`` LR pixels of real context on every side where
    the image has them (windows are shifted inside the image, not padded); an image smaller than a
    window is edge-padded and its output cropped. ``run`` maps a window (HxWx3) to its output."""
    wh, ww = window
    if wh <= 2 * overlap or ww <= 2 * overlap:
        raise PcarnError(f"a {wh}x{ww} input cannot keep {overlap} pixels of context on each side")
    h, w, _ = rgb.shape
    padded = np.pad(rgb, ((0, max(0, wh - h)), (0, max(0, ww - w)), (0, 0)), mode="edge")
    ph, pw, _ = padded.shape
    result = np.empty((h * scale, w * scale, 3), dtype=np.float32)
    step_h, step_w = wh - 2 * overlap, ww - 2 * overlap
    cores = [(y0, x0) for y0 in range(0, h, step_h) for x0 in range(0, w, step_w)]
    for y0, x0 in tqdm(cores, desc=f"x{scale} windows", unit="window", disable=not progress, leave=False):
        y1, x1 = min(y0 + step_h, h), min(x0 + step_w, w)
        wy0 = min(max(0, y0 - overlap), ph - wh)  # shifted to stay inside the (padded) image
        wx0 = min(max(0, x0 - overlap), pw - ww)
        out = run(padded[wy0 : wy0 + wh, wx0 : wx0 + ww])
        oy, ox = (y0 - wy0) * scale, (x0 - wx0) * scale
        result[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = out[
            oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
        ]
    return result
