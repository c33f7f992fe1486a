"""Tiled inference equals the untiled pass (away from float rounding) and bounds tile sizes."""

from __future__ import annotations

import numpy as np
import pytest

from models import build_model
from toolkit.inference import receptive_radius, upscale_rgb
from toolkit.tiling import tile_grid


def test_tile_grid_covers_every_pixel_once():
    seen = np.zeros((70, 45), dtype=int)
    for y0, y1, x0, x1 in tile_grid(70, 45, 16):
        assert y1 - y0 <= 16 and x1 - x0 <= 16
        seen[y0:y1, x0:x1] += 1
    assert (seen == 1).all()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiled_equals_untiled_with_the_full_model(scale):
    """The real pcarn-m: its receptive radius is ~21 LR px, below the default overlap of 24."""
    import torch

    torch.manual_seed(scale)
    model = build_model("pcarn-m").eval()
    assert receptive_radius(model, scale) <= 24
    rgb = np.random.default_rng(scale).random((41, 53, 3), dtype=np.float32)
    whole = upscale_rgb(model, rgb, scale, tile=0, as_uint8=False)
    tiled = upscale_rgb(model, rgb, scale, tile=16, overlap=24, as_uint8=False)
    assert np.abs(whole - tiled).max() <= 1e-5
    whole8 = upscale_rgb(model, rgb, scale, tile=0)
    tiled8 = upscale_rgb(model, rgb, scale, tile=16, overlap=24)
    assert np.abs(whole8.astype(int) - tiled8.astype(int)).max() <= 1


def test_too_little_overlap_shows_seams(tiny_model):
    rgb = np.random.default_rng(0).random((30, 30, 3), dtype=np.float32)
    whole = upscale_rgb(tiny_model, rgb, 2, tile=0, as_uint8=False)
    seamed = upscale_rgb(tiny_model, rgb, 2, tile=10, overlap=0, as_uint8=False)
    assert np.abs(whole - seamed).max() > 1e-3  # proves the equality test above can fail
