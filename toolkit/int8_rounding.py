"""Per-output-channel symmetric int8 weights ([-127, 127]), as PT2E's and coremltools' quantizers
store conv weights: the one rounding that both the int8 weight choice (``export/weight_choice.py``)
and quantization-aware fine-tuning (``toolkit/training/int8_tuning.py``) model."""

from __future__ import annotations

import torch


def int8_round_trip(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` rounded to 255 levels per output channel (scale: the channel's largest magnitude
    over 127) and back to float."""
    absmax = weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True)
    scale = (absmax / 127.0).clamp_min(torch.finfo(torch.float32).tiny)
    return torch.round(weight / scale).clamp(-127, 127) * scale


def int8_rounded_straight_through(weight: torch.Tensor) -> torch.Tensor:
    """``int8_round_trip`` in the forward pass, identity in the backward pass (nothing is clipped:
    the scale is each channel's own largest magnitude)."""
    return weight + (int8_round_trip(weight.detach()) - weight).detach()
