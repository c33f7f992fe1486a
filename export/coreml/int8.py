"""W8A8 Core ML programs through coremltools' own PyTorch quantizer.

Core ML's post-conversion activation calibration runs the model through Core ML, which exists only
on macOS; so activations are calibrated in PyTorch instead (``coremltools.optimize.torch``'s
``LinearQuantizer``), on the same photo crops as the other formats, and the converter turns the
quantized graph into int8 weights (``constexpr_affine_dequantize``) and quantize/dequantize pairs on
the activations (iOS 17+).

Calibration is post-training, as in the other formats: min-max observers over every crop, on the
float activations (fake quantization stays off until the ranges are final). The quantizer's defaults
are for training: moving-average observers move 1% a step, so eight crops left each range about
where the first crop put it, and everything brighter was clipped (PCARN-M x2 on held-out crops:
17-48 dB PSNR against fp32, 44-46 dB with min-max ranges).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch

from export.coreml.mixed import activations, constants, feed, float_choice, unfeed, with_float
from export.kept_ranges import Ranges, calibrate
from export.mixed import Selection, WideChoice
from export.optional import require
from export.weight_choice import choose_float_modules
from toolkit.errors import PcarnError

# coremltools' symmetric int8 weights span [-128, 127]: step = the channel's largest magnitude / 127.5
WEIGHT_LEVELS = (-128, 127)


def quantized_head(
    head: torch.nn.Module,
    input_size: tuple[int, int],
    inputs: list[np.ndarray],
    float_activations: tuple[str, ...] = (),
    float_weights: tuple[str, ...] = (),
    ranges: Ranges | None = None,
) -> torch.fx.GraphModule:
    """``head`` (NCHW) with symmetric per-channel int8 weights and int8 activations calibrated on
    ``inputs`` (HxWx3 crops), ready to trace; ``export/coreml/mixed.py``'s choice: the
    ``float_weights`` convs (module names) are left out of quantization, weights and all, and the
    ``float_activations`` skip their quantize/dequantize pairs; ``ranges``: earlier runs'
    calibrations (``export/kept_ranges.py``)."""
    quantization = require("coremltools.optimize.torch.quantization")
    never = 10**9
    convs = {name for name, m in head.named_modules() if isinstance(m, torch.nn.Conv2d)}
    unknown = sorted(set(float_weights) - convs)
    if unknown:  # the choice was made on another model
        raise PcarnError(f"Core ML mixed precision chose conv {unknown[0]!r}, which this head does not have")
    config = quantization.LinearQuantizerConfig.from_dict(
        {
            "global_config": {
                "quantization_scheme": "symmetric",
                "weight_observer": "min_max",
                "activation_observer": "min_max",
                # observers on from the first step; fake quantization and freezing never scheduled
                "milestones": [0, never, never, never],
            },
            "module_name_configs": {name: None for name in float_weights},
        }
    )
    sample = torch.rand(1, 3, *input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantizer = quantization.LinearQuantizer(head.eval(), config)
        prepared = quantizer.prepare(example_inputs=(sample,), inplace=False)
        quantizer.step()
        calibrate(prepared, [feed(crop) for crop in inputs], ranges)
        graph = quantizer.finalize(inplace=False).eval()
    missing = set(float_activations) - set(activations(graph))
    if missing:  # the choice was made on another graph
        raise PcarnError(
            f"Core ML mixed precision chose {sorted(missing)[0]!r}, which this graph does not have"
        )
    return with_float(graph, [*constants(graph), *float_activations])


def chosen_float(head: torch.nn.Module, chosen_on: Selection, budget_db: float) -> WideChoice:
    """``export/coreml/mixed.py``'s choice for ``head``: first the conv weights to keep float
    (``export/weight_choice.py``), then the activations, on its graph with those convs float,
    calibrated on the selection crops at their size (activation names do not depend on it)."""
    weights = choose_float_modules(head, chosen_on, budget_db, feed, unfeed, WEIGHT_LEVELS)
    calibrated = quantized_head(head, chosen_on.size, chosen_on.crops, float_weights=weights)
    return dataclasses.replace(float_choice(calibrated, head, chosen_on, budget_db), float_weights=weights)
