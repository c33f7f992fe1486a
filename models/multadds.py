"""Per-layer MultAdds counter (the paper's MAs: conv weights x output pixels, tables 4 and 5).

The model runs on the ``meta`` device, so counting a 720p forward pass allocates nothing and takes
milliseconds; a forward hook on every convolution records what it actually computed, so a tied unit
is counted each time it runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn

HD_720P = (720, 1280)  # (height, width) of the HR output the paper times and counts at


@dataclass(frozen=True)
class LayerCount:
    name: str
    multadds: int
    output_pixels: int


def count_conv_multadds(model: nn.Module, forward) -> list[LayerCount]:
    """Run ``forward(meta_model)`` and return one record per convolution call, in call order."""
    meta_model = copy.deepcopy(model).to("meta")
    records: list[LayerCount] = []
    handles = []
    for name, module in meta_model.named_modules():
        if isinstance(module, nn.Conv2d):

            def hook(mod, _inputs, output, name=name):
                pixels = output.shape[0] * output.shape[-2] * output.shape[-1]
                records.append(LayerCount(name, mod.weight.numel() * pixels, pixels))

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            forward(meta_model)
    finally:
        for handle in handles:
            handle.remove()
    return records


def multadds_for_lr_size(model: nn.Module, scale: int, lr_size: tuple[int, int]) -> int:
    """MultAdds of one forward pass of a (1, 3, H, W) LR image at ``scale``."""
    x = torch.empty(1, 3, *lr_size, device="meta")
    return sum(r.multadds for r in count_conv_multadds(model, lambda m: m(x, scale)))


def multadds_at_hr(model: nn.Module, scale: int, hr_size: tuple[int, int] = HD_720P) -> int:
    """MultAdds to produce an HR image of ``hr_size``, with LR pixel count = H*W / scale^2.

    Every layer works at a fixed multiple of the LR pixel count, so counting at an LR image of the
    HR size and scaling by 1/scale^2 is exact; it also defines x3, where 1280/3 is not whole.
    """
    at_hr = multadds_for_lr_size(model, scale, hr_size)
    return round(Fraction(at_hr, scale * scale))


def multadds_720p(model: nn.Module, scales: tuple[int, ...] | None = None) -> dict[str, int]:
    """MultAdds at 720p output for every head, keyed ``x2``/``x3``/``x4``."""
    scales = scales or tuple(model.config.scales)
    return {f"x{s}": multadds_at_hr(model, s) for s in scales}
