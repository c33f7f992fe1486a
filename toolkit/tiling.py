"""How a photo is cut into LR tiles: the default tile and overlap, and the grid. Free of torch, so
the CLI states the defaults in its help without importing it."""

from __future__ import annotations

from collections.abc import Iterator

DEFAULT_TILE = 256
DEFAULT_OVERLAP = 24


def tile_grid(height: int, width: int, tile: int) -> Iterator[tuple[int, int, int, int]]:
    """Cover the image with ``tile``-sized (y0, y1, x0, x1) rectangles, last ones clipped."""
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            yield y0, min(y0 + tile, height), x0, min(x0 + tile, width)
