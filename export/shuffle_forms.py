"""The pixel shuffle written as a grouped one-hot ConvTranspose: exact, and faster on ONNX Runtime's CPU.

ONNX Runtime runs DepthToSpace as a strided 6-D transpose (147 ms for one [1, 256, 360, 640] stage on
this machine, ``benchmarks/results/onnx-shuffle.json``); the same shuffle as a ConvTranspose with
``groups = C``, a r x r kernel and stride r, whose weights are one-hot (input channel
``c r^2 + i r + j`` -> output channel ``c``, tap ``(i, j)``), reads each input once and writes each
output once (70 ms). Every output is one input times 1.0 plus products with exact zeros, so the
outputs are bit-for-bit PyTorch's pixel shuffle (CRD order).

Mobile execution providers map DepthToSpace natively and have no grouped transposed conv (NNAPI's
TRANSPOSE_CONV_2D takes no groups), so this form is an export option, not the default
(``pcarn export --shuffle conv-transpose``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from export.common import DeployHead
from export.exit_at_lr import StagedHead


def one_hot_weight(channels: int, r: int) -> torch.Tensor:
    """ConvTranspose weight (C r^2, 1, r, r) that equals ``pixel_shuffle(x, r)`` with groups=C."""
    weight = torch.zeros(channels * r * r, 1, r, r)
    for c in range(channels):
        for i in range(r):
            for j in range(r):
                weight[(c * r + i) * r + j, 0, i, j] = 1.0
    return weight


def is_one_hot_shuffle(weight, group: int, kernel: list[int], strides: list[int]) -> bool:
    """Whether a ConvTranspose (weight array, group, kernel, strides) is a pixel shuffle: its
    non-zero taps are exactly the one-hot pattern and all equal (1.0, or one int8 level)."""
    weight = np.asarray(weight)
    if weight.ndim != 4 or weight.shape[1] != 1:
        return False
    r = weight.shape[-1]
    if list(kernel) != [r, r] or list(strides) != [r, r] or weight.shape[0] != group * r * r:
        return False
    pattern = one_hot_weight(group, r).numpy() != 0
    values = weight[pattern]
    return bool(np.array_equal(weight != 0, pattern) and np.all(values == values.flat[0]))


class OneHotShuffle(nn.Module):
    def __init__(self, channels: int, r: int) -> None:
        super().__init__()
        self.channels, self.r = channels, r
        self.register_buffer("weight", one_hot_weight(channels, r))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, self.weight, stride=self.r, groups=self.channels)


class ConvTransposeShuffleHead(StagedHead):
    """A DeployHead (optionally with the exit conv at LR, ``export/exit_at_lr.py``) whose pixel
    shuffles are one-hot ConvTransposes; NCHW, equal outputs."""

    def __init__(self, head: DeployHead, exit_at_lr: bool = False) -> None:
        super().__init__(head, exit_at_lr)
        shuffled = [conv.out_channels for conv in self.stages]
        if self.exit_r is not None:
            shuffled[-1] = self.exit_r.out_channels
        self.shuffles = nn.ModuleList(
            OneHotShuffle(c // (r * r), r) for c, r in zip(shuffled, self.factors, strict=True)
        )

    def shuffle(self, index: int, y: torch.Tensor) -> torch.Tensor:
        return self.shuffles[index](y)


def rank4_pixel_shuffle(y: torch.Tensor, r: int) -> torch.Tensor:
    """PyTorch's pixel shuffle (CRD) with no tensor above rank 4: (N*C*r, r, H, W) -> move the column
    offset last -> (N*C, r, H, W*r) -> swap the row offset past H. Exact (a permutation of elements);
    the usual lowering needs one rank-6 transpose, which GPU delegates do not take."""
    n, channels, h, w = y.shape
    c = channels // (r * r)
    y = y.reshape(n * c * r, r, h, w).permute(0, 2, 3, 1)
    y = y.reshape(n * c, r, h, w * r).permute(0, 2, 1, 3)
    return y.reshape(n, c, h * r, w * r)


class Rank4ShuffleHead(StagedHead):
    """A DeployHead (optionally with the exit conv at LR) whose pixel shuffles never leave rank 4;
    NCHW, outputs equal bit for bit. ExecuTorch's ``.pte`` files are lowered from it.

    ``copy_output``: with the exit conv at LR the graph ends in the shuffle's last reshape, which
    XNNPACK does not take as a ``--dynamic`` program's output (it stayed on portable kernels); a copy
    after it keeps the whole graph in the delegate."""

    def __init__(self, head: DeployHead, exit_at_lr: bool, copy_output: bool = False) -> None:
        super().__init__(head, exit_at_lr)
        self.copy_output = copy_output and exit_at_lr

    def shuffle(self, index: int, y: torch.Tensor) -> torch.Tensor:
        return rank4_pixel_shuffle(y, self.factors[index])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y.clone() if self.copy_output else y
