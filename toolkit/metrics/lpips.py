"""LPIPS, the paper's perceptual metric (section 5): AlexNet features with the v0.1 linear heads.

Zhang et al.'s recipe, step by step: images in [-1, 1] go through LPIPS's fixed scaling layer, then
AlexNet; each of its five ReLU taps is unit-normalised over channels, the squared difference is
weighted per channel by that tap's linear head (a 1x1 conv without bias), averaged over space, and
the five taps are summed. Lower is better; LPIPS(x, x) = 0. Weights: ``package_weights.ALEXNET_LPIPS``.
This network judges models; it is never a training loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.errors import PcarnError
from toolkit.weights.third_party import ALEXNET_LPIPS, load_package_weights

# LPIPS's ScalingLayer: per-channel shift and scale applied to [-1, 1] inputs.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# AlexNet (torchvision layout): (out channels, kernel, stride, padding); max-pool 3/2 after taps 1, 2.
ALEXNET_CONVS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
POOL_AFTER = (0, 1)
EPS = 1e-10
# AlexNet's two 3/2 max-pools need a 7x7 first-conv map: 31 input pixels per side at the least.
MIN_SIDE = 31


def flax_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """Flax HWIO kernel -> torch OIHW."""
    return kernel.permute(3, 2, 0, 1).contiguous()


class AlexNetLPIPS(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        convs, c_in = [], 3
        for c_out, kernel, stride, padding in ALEXNET_CONVS:
            convs.append(nn.Conv2d(c_in, c_out, kernel, stride, padding))
            c_in = c_out
        self.convs = nn.ModuleList(convs)
        self.heads = nn.ModuleList(nn.Conv2d(c.out_channels, 1, 1, bias=False) for c in convs)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def load_flax(self, tensors: dict[str, torch.Tensor]) -> AlexNetLPIPS:
        with torch.no_grad():
            for i, conv in enumerate(self.convs):
                conv.weight.copy_(flax_kernel(tensors[f"AlexNet_0/Conv_{i}/kernel"]))
                conv.bias.copy_(tensors[f"AlexNet_0/Conv_{i}/bias"])
            for i, head in enumerate(self.heads):
                head.weight.copy_(flax_kernel(tensors[f"NetLinLayer_{i}/Conv_0/kernel"]))
        return self

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        taps = []
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            taps.append(x)
            if i in POOL_AFTER:
                x = F.max_pool2d(x, 3, 2)
        return taps

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS per image of two NCHW batches in [-1, 1]; shape (N,)."""
        total = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        for head, fa, fb in zip(self.heads, self.taps(a), self.taps(b), strict=True):
            diff = (_unit(fa) - _unit(fb)) ** 2
            total = total + head(diff).mean(dim=(1, 2, 3))
        return total


def _unit(features: torch.Tensor) -> torch.Tensor:
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)


_CACHED: AlexNetLPIPS | None = None


def lpips_alex(*, quiet: bool = False) -> AlexNetLPIPS:
    """The AlexNet-lin v0.1 network with its released weights (built once per process)."""
    global _CACHED
    if _CACHED is None:
        _CACHED = AlexNetLPIPS().load_flax(load_package_weights(ALEXNET_LPIPS, quiet=quiet))
    return _CACHED


def to_lpips_input(rgb8: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float32 1x3xHxW in [-1, 1]."""
    return torch.from_numpy(rgb8.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]


def lpips_rgb8(sr8: np.ndarray, hr8: np.ndarray, border: int, *, net: AlexNetLPIPS | None = None) -> float:
    """LPIPS between two uint8 RGB images after cropping ``border`` pixels (the PSNR convention)."""
    if sr8.shape != hr8.shape:
        raise ValueError(f"shapes differ: {sr8.shape} vs {hr8.shape}")
    if border > 0:
        sr8, hr8 = sr8[border:-border, border:-border], hr8[border:-border, border:-border]
    if min(sr8.shape[:2]) < MIN_SIDE:
        raise PcarnError(
            f"LPIPS needs at least {MIN_SIDE}x{MIN_SIDE} pixels after the border crop, got {sr8.shape[:2]}"
        )
    net = net or lpips_alex()
    with torch.no_grad():
        return float(net(to_lpips_input(sr8), to_lpips_input(hr8))[0])
