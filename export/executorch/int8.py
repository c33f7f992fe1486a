"""Integer ``.pte`` files: PT2E with ExecuTorch's XNNPACK quantizer, lowered whole to XNNPACK.

Per-channel symmetric int8 weights, int8 activations, with the tied-unit and fused-ReLU annotations
of ``export/pt2e_annotate.py`` (each later integer call of a tied conv owns its bias: XNNPACK
quantizes a shared bias once, with the first call's input scale). XNNPACK's int8 concatenation takes
one range for all its inputs and its output (the stock annotator shares them), so the
mixed-precision choice (``export/pt2e_mixed.py``, which chooses a concatenation together with its
inputs) leaves the noisiest tensors float until the head fits ``--int8-budget``; the choice runs the
PT2E graph in PyTorch, which computes what the lowered file computes (pcarn-m-gan x2 on the
selection crops: -0.006 dB simulated, -0.007 lowered). Float tensors run in XNNPACK's fp32 kernels
inside the same delegate, with a convert node at each boundary.
"""

from __future__ import annotations

import numpy as np
import torch

from export.image_io import from_pixels, sample_pixels, to_pixels
from export.kept_ranges import Ranges
from export.mixed import Selection, WideChoice
from export.optional import require
from export.pt2e_annotate import (
    annotate_convs,
    calibrated,
    float_weight_convs,
    layout_ops,
    whole_convs,
    with_min_max_ranges,
)
from export.pt2e_mixed import check_names, choose_float, float_convs, keep_float


def _byte_moving_ops() -> set:
    """What XNNPACK's annotator gives its input's quantization parameters."""
    return layout_ops()


def _quantizer(float_tensors: tuple[str, ...] = (), float_weights: tuple[str, ...] = ()):
    xnnpack = require("executorch.backends.xnnpack.quantizer.xnnpack_quantizer")

    class PcarnXnnpackQuantizer(xnnpack.XNNPACKQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            annotate_convs(model, self.global_config)
            model = super().annotate(model)
            float_weight_convs(model, float_weights)
            keep_float(model, float_tensors, _byte_moving_ops())
            whole_convs(model, self.global_config)
            return model

    config = xnnpack.get_symmetric_quantization_config(is_per_channel=True)
    return PcarnXnnpackQuantizer().set_global(with_min_max_ranges(config))


def _feed(crop: np.ndarray, image: bool) -> torch.Tensor:
    """An HxWx3 float crop as the NCHW head's input, or ``image``: as uint8 NHWC pixels."""
    x = np.ascontiguousarray(crop.transpose(2, 0, 1))[None]
    return torch.from_numpy(to_pixels(x) if image else x)


def _unfeed(y: torch.Tensor, image: bool) -> np.ndarray:
    """The head's output as an HxWx3 image in [0, 1]."""
    return from_pixels(y.numpy())[0].transpose(1, 2, 0) if image else y[0].permute(1, 2, 0).numpy()


def _sample(size: tuple[int, int], image: bool) -> tuple[torch.Tensor]:
    return (sample_pixels(size) if image else torch.rand(1, 3, *size),)


def quantized_program(
    head: torch.nn.Module,
    input_size: tuple[int, int],
    inputs: list[np.ndarray],
    image: bool,
    float_tensors: tuple[str, ...],
    dynamic_shapes: tuple | None = None,
    float_weights: tuple[str, ...] = (),
    ranges: Ranges | None = None,
) -> tuple[torch.export.ExportedProgram, int]:
    """The NCHW head (``image``: taking uint8 pixels) calibrated on ``inputs`` (HxWx3 crops; or
    its ranges recalled from ``ranges``, ``export/kept_ranges.py``) with ``float_tensors`` (and the
    ``float_weights`` convs) left float, exported for lowering; with the number of convs that run in
    float."""
    sample = _sample(input_size, image)
    feeds = [_feed(crop, image) for crop in inputs]
    quantizer = _quantizer(float_tensors, float_weights)
    converted = calibrated(head, sample, quantizer, feeds, dynamic_shapes, fold=True, ranges=ranges)
    check_names(converted, float_tensors + float_weights)
    return torch.export.export(converted, sample, dynamic_shapes=dynamic_shapes), float_convs(converted)


def float_choice(head: torch.nn.Module, chosen_on: Selection, budget_db: float, image: bool) -> WideChoice:
    """The fewest activations of the head to leave float for ``budget_db`` dB of PSNR-Y, measured on
    a small calibrated copy of its graph."""
    feed, unfeed = (lambda crop: _feed(crop, image)), (lambda y: _unfeed(y, image))
    sample = _sample(chosen_on.size, image)
    moving = _byte_moving_ops()
    return choose_float(head, _quantizer, sample, chosen_on, budget_db, moving, feed, unfeed)
