"""Per-output-channel symmetric int8 weights, as the quantizers store conv weights: the one rounding
that both the int8 weight choice (``export/weight_choice.py``) and quantization-aware fine-tuning
(``toolkit/training/int8_tuning.py``) model. PT2E's quantizers use 255 levels ([-127, 127], step
the channel's largest magnitude over 127); coremltools' use all 256 ([-128, 127], step over 127.5)."""

from __future__ import annotations

import torch

PT2E_LEVELS = (-127, 127)


def int8_round_trip(weight: torch.Tensor, levels: tuple[int, int] = PT2E_LEVELS) -> torch.Tensor:
    """``weight`` rounded per output channel to the integers ``levels`` spans (symmetric: the step
    is the channel's largest magnitude over half their span) and back to float."""
    low, high = levels
    absmax = weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True)
    scale = (absmax / ((high - low) / 2)).clamp_min(torch.finfo(torch.float32).tiny)
    return torch.round(weight / scale).clamp(low, high) * scale


def int8_rounded_straight_through(weight: torch.Tensor) -> torch.Tensor:
    """``int8_round_trip`` in the forward pass, identity in the backward pass (nothing is clipped:
    the scale is each channel's own largest magnitude)."""
    return weight + (int8_round_trip(weight.detach()) - weight).detach()
