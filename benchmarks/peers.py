"""Peer generators from their papers, for the paper's speed comparisons (latency needs no weights).

SRResNet (Ledig et al. 2017; the generator of SRGAN, EnhanceNet-like and TSRN models): 9x9 entry conv,
16 residual blocks (conv-BN-PReLU-conv-BN), a conv-BN global skip, x2 pixel-shuffle stages with PReLU,
9x9 exit conv. For inference its batch norms are folded into the convs, so they are plain biased convs
here. RRDBNet (ESRGAN, Wang et al. 2018): 23 residual-in-residual dense blocks (nf 64, growth 32),
nearest-neighbour x2 upsampling stages with convs, LeakyReLU 0.2. Weights are random: these exist to be
timed and counted, never to upscale images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRResNet(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 64, blocks: int = 16) -> None:
        super().__init__()
        self.scale = scale
        self.entry = nn.Conv2d(3, channels, 9, padding=4)
        self.entry_act = nn.PReLU()
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                [
                    nn.Conv2d(channels, channels, 3, padding=1),
                    nn.PReLU(),
                    nn.Conv2d(channels, channels, 3, padding=1),
                ]
            )
            for _ in range(blocks)
        )
        self.skip = nn.Conv2d(channels, channels, 3, padding=1)
        factors = [2, 2] if scale == 4 else [scale]
        self.factors = factors
        self.ups = nn.ModuleList(nn.Conv2d(channels, channels * r * r, 3, padding=1) for r in factors)
        self.up_acts = nn.ModuleList(nn.PReLU() for _ in factors)
        self.exit = nn.Conv2d(channels, 3, 9, padding=4)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        h = self.entry_act(self.entry(x))
        y = h
        for conv1, act, conv2 in self.blocks:
            y = y + conv2(act(conv1(y)))
        y = self.skip(y) + h
        for conv, act, r in zip(self.ups, self.up_acts, self.factors, strict=True):
            y = act(F.pixel_shuffle(conv(y), r))
        return self.exit(y)


class _DenseBlock(nn.Module):
    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, padding=1) for i in range(5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(feats, dim=1))
            if i < 4:
                feats.append(F.leaky_relu(out, 0.2))
        return x + 0.2 * out


class _RRDB(nn.Module):
    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.dense = nn.Sequential(*(_DenseBlock(nf, gc) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.dense(x)


class RRDBNet(nn.Module):
    def __init__(self, scale: int = 4, nf: int = 64, blocks: int = 23, gc: int = 32) -> None:
        super().__init__()
        self.factors = [2, 2] if scale == 4 else [scale]
        self.entry = nn.Conv2d(3, nf, 3, padding=1)
        self.trunk = nn.Sequential(*(_RRDB(nf, gc) for _ in range(blocks)))
        self.trunk_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.ups = nn.ModuleList(nn.Conv2d(nf, nf, 3, padding=1) for _ in self.factors)
        self.hr_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.exit = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        h = self.entry(x)
        y = h + self.trunk_conv(self.trunk(h))
        for conv, r in zip(self.ups, self.factors, strict=True):
            y = F.leaky_relu(conv(F.interpolate(y, scale_factor=r, mode="nearest")), 0.2)
        return self.exit(F.leaky_relu(self.hr_conv(y), 0.2))


PEERS = {"srresnet": SRResNet, "rrdbnet": RRDBNet}
# Table 4 of the paper (x4, 720p output): parameters and MultAdds it reports.
PAPER_X4 = {
    "srresnet": {"params": 1.5e6, "multadds": 127.8e9},
    "pcarn": {"params": 1.6e6, "multadds": 90.9e9},
    "pcarn-m": {"params": 0.4e6, "multadds": 32.5e9},
}
