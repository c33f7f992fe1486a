"""The exit conv moved before the last pixel shuffle: exact, and SIMD-friendly.

The 64 -> 3 exit conv runs at full resolution, where 3 output channels fill 3 of a vector unit's 16
lanes, and the last pixel shuffle moves 64 channels of full-resolution data. Both shrink when the exit
conv runs on the last stage's pre-shuffle tensor ``z`` (C r^2 channels at the previous resolution):

    exit(PS_r(z)) == PS_r(exit_r(z))

where ``exit_r`` is a 3x3 conv from C r^2 to 3 r^2 channels. An output pixel at sub-position (a, b)
of its r x r block reads, through the 3x3 window at full resolution, sub-positions (a + dy) mod r of
rows floor((a + dy) / r) away, so every tap of the original kernel lands on exactly one tap of a 3x3
kernel at the lower resolution (for r >= 2). Zero padding agrees too: a full-resolution pixel outside
the image is the shuffle of an outside low-resolution pixel. The last shuffle then moves 3 channels,
not 64, at the price of r^2 times the exit conv's multiply-adds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from export.common import DeployHead


def exit_weights(conv: nn.Conv2d, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (3 r^2, C r^2, 3, 3) and bias (3 r^2) of ``exit_r``, in PyTorch's CRD channel order."""
    w = conv.weight.detach()
    out_c, in_c, kh, kw = w.shape
    if (kh, kw) != (3, 3) or r < 2:
        raise ValueError("the exit rewrite is for a 3x3 exit conv after a shuffle of 2 or more")
    folded = torch.zeros(out_c * r * r, in_c * r * r, 3, 3, dtype=w.dtype)
    for a in range(r):
        for b in range(r):
            for dy in (-1, 0, 1):
                ky, i = divmod(a + dy, r)  # LR row offset (-1, 0 or 1) and sub-row read
                for dx in (-1, 0, 1):
                    kx, j = divmod(b + dx, r)
                    rows = [o * r * r + a * r + b for o in range(out_c)]
                    cols = [c * r * r + i * r + j for c in range(in_c)]
                    folded[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :], ky + 1, kx + 1] += w[
                        :, :, dy + 1, dx + 1
                    ]
    bias = conv.bias.detach().repeat_interleave(r * r) if conv.bias is not None else None
    return folded, bias


def extra_multadds(head: DeployHead, size: tuple[int, int]) -> int:
    """Multiply-adds the folded exit adds to ``head`` at LR ``size``: ``exit_r`` has r^2 times the exit
    conv's (the paper's count, ``models.multadds``, stays the model's)."""
    r = head.net.heads[f"x{head.scale}"].factors[-1]
    exit_macs = 3 * head.net.config.channels * 9 * size[0] * size[1] * head.scale**2
    return exit_macs * (r * r - 1)


class StagedHead(nn.Module):
    """A DeployHead run stage by stage so its graph can be rewritten: ``exit_r`` (when set) replaces
    the exit conv before the last shuffle, and ``shuffle`` may be overridden; NCHW, equal outputs."""

    def __init__(self, head: DeployHead, exit_at_lr: bool) -> None:
        super().__init__()
        self.head = head
        upsample = head.net.heads[f"x{head.scale}"]
        self.stages, self.factors = upsample.stages, upsample.factors
        self.exit_r = None
        if exit_at_lr:
            weight, bias = exit_weights(head.net.exit, self.factors[-1])
            self.exit_r = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, bias=bias is not None)
            with torch.no_grad():
                self.exit_r.weight.copy_(weight)
                if bias is not None:
                    self.exit_r.bias.copy_(bias)

    @property
    def net(self):  # what the graph checks read of a head
        return self.head.net

    @property
    def scale(self) -> int:
        return self.head.scale

    def shuffle(self, index: int, y: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(y, self.factors[index])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head.net.trunk(x - self.head.input_mean)
        last = len(self.stages) - 1
        for index, conv in enumerate(self.stages):
            y = F.relu(conv(y))
            y = self.shuffle(index, self.exit_r(y) if index == last and self.exit_r is not None else y)
        return y if self.exit_r is not None else self.head.net.exit(y)


class ExitAtLR(StagedHead):
    """A DeployHead with its exit conv folded before the last pixel shuffle; NCHW, equal outputs."""

    def __init__(self, head: DeployHead) -> None:
        super().__init__(head, exit_at_lr=True)
