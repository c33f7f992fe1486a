"""pcarn-toolkit's application layer: the Python API and, in ``pcarn.cli``, the ``pcarn`` command.

import pcarn

model = pcarn.open_model("pcarn-m-gan")            # a name, a checkpoint, or an exported file
pcarn.upscale("photo.png", 4, model).save("photo-x4.png")
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Opened", "load_model", "open_model", "upscale", "upscale_array"]


def __getattr__(name: str) -> Any:
    """The API is imported at its first use, so ``pcarn --help`` does not pay for torch."""
    if name in __all__:
        return getattr(importlib.import_module("pcarn.api"), name)
    raise AttributeError(f"module 'pcarn' has no attribute {name!r}")
