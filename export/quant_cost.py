"""Parity of int8 files, judged where users judge it: the cost of quantization in PSNR-Y on the
scikit-image validation photos, against the fp32 PyTorch model run through the same windows.

Max abs error says little about an 8-bit network (every value moves by up to a step); what matters
is how much worse the picture gets. The file runs in its own runtime on whole photos, cut into its
fixed input size (``export.file_model``); PyTorch runs the same windows, so the only difference left
is the quantization.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from export.common import DeployHead
from export.file_model import FileModel
from toolkit.inference import receptive_radius, upscale_windows
from toolkit.metrics.evaluate import evaluate, validation_images

INT8_MAX_COST_DB = 0.10
METRICS = ("psnr_y", "ssim_y", "lpips")


class WindowedHead:
    """The fp32 PyTorch head (or ``module``, a graph made from it), run window by window like a
    fixed-size file."""

    def __init__(
        self, head: DeployHead, window: tuple[int, int], module: torch.nn.Module | None = None
    ) -> None:
        # channels-last: the same fp32 arithmetic, about 1.8x faster for PCARN-M on CPU
        self.head = copy.deepcopy(head if module is None else module).to(memory_format=torch.channels_last)
        self.window = window
        self.overlap = math.ceil(receptive_radius(head.net, head.scale))

    def _run(self, lr_hwc: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(lr_hwc.transpose(2, 0, 1)))[None]
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.head(x)[0].permute(1, 2, 0).numpy()

    def upscale(self, rgb: np.ndarray, scale: int) -> np.ndarray:
        return upscale_windows(self._run, rgb.astype(np.float32), scale, self.window, self.overlap)


def quantization_cost(
    head: DeployHead,
    path: Path,
    input_size: tuple[int, int],
    cache: dict,
    val: str | Path = "skimage",
    images: dict[str, np.ndarray] | None = None,
    max_cost_db: float = INT8_MAX_COST_DB,
) -> dict:
    """PSNR-Y / SSIM-Y / LPIPS of the file and of fp32 PyTorch on the validation photos (``images``,
    read from ``val`` when not given: ``skimage``, ``held-out:DIR`` or a folder), and the cost in
    dB; the PyTorch side is computed once per head."""
    images = validation_images(val) if images is None else images
    key = ("fp32-pytorch-windows", input_size, str(val))
    if key not in cache:
        cache[key] = evaluate(WindowedHead(head, input_size), images, (head.scale,), baseline=False)[
            f"x{head.scale}"
        ]
    reference = cache[key]
    # the cost compares the file with PyTorch: bicubic's scores would be the same for every file
    measured = evaluate(FileModel.open(path), images, (head.scale,), baseline=False)[f"x{head.scale}"]
    cost = reference["psnr_y"] - measured["psnr_y"]
    return {
        "cost_db": cost,
        "max_cost_db": max_cost_db,
        "passed": cost <= max_cost_db,
        "pytorch_fp32": {k: reference[k] for k in METRICS},
        "file": {k: measured[k] for k in METRICS},
        "photos": sorted(images),
    }
