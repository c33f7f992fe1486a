"""Multi-scale discriminator of PCARN (section 3.2, Fig. 1 bottom and Fig. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.01


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int) -> list[nn.Module]:
    pad = 1  # 3x3/stride 1 and 4x4/stride 2 both keep size / halve it with padding 1
    return [
        nn.Conv2d(c_in, c_out, kernel, stride, pad),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(LEAKY_SLOPE),
    ]


class Discriminator(nn.Module):
    """Nine convs: 3x3/64, [4x4 s2, 3x3] at 64/128/256, 3x3/512 twice, 3x3 -> 1, sigmoid.

    BatchNorm on all but the first and the last conv; outputs a per-patch probability map.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1), nn.LeakyReLU(LEAKY_SLOPE)]
        layers += _conv_bn(64, 64, 4, 2)
        layers += _conv_bn(64, 128, 3, 1)
        layers += _conv_bn(128, 128, 4, 2)
        layers += _conv_bn(128, 256, 3, 1)
        layers += _conv_bn(256, 256, 4, 2)
        layers += _conv_bn(256, 512, 3, 1)
        layers += _conv_bn(512, 512, 3, 1)
        layers += [nn.Conv2d(512, 1, 3, 1, 1), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MultiScaleDiscriminator(nn.Module):
    """Three independent discriminators fed the image average-pooled by 1, 2 and 4 (Eq. 6)."""

    def __init__(self, pools: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        self.pools = pools
        self.discriminators = nn.ModuleList(Discriminator() for _ in pools)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for pool, disc in zip(self.pools, self.discriminators, strict=True):
            outs.append(disc(F.avg_pool2d(x, pool) if pool > 1 else x))
        return outs
