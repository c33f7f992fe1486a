"""Pixel shuffle as ONE native TFLite DEPTH_TO_SPACE per upsampling stage.

PyTorch's pixel shuffle reads channels in CRD order (``c * r*r + i * r + j``); TFLite's DEPTH_TO_SPACE
reads DCR order (``(i * r + j) * C + c``). For a dense head conv, permuting its output channels (weights
and bias) makes the two equal exactly. A grouped head conv (PCARN-M, groups=4) cannot be permuted that
way without mixing groups, so there the stage inserts an exact rank-4 channel transpose
(N, H*W, C, r*r) -> (N, H*W, r*r, C) instead; the conv stays grouped and is never densified.

The op is a torch custom op with a litert-torch lowering to ``tfl.depth_to_space``, the mechanism
litert-torch's own torch_tfl lowerings use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_REGISTERED = False


def _reference_depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
    """TFLite semantics on NHWC: out[n, h*r+i, w*r+j, c] = in[n, h, w, (i*r+j)*C + c]."""
    n, h, w, cr2 = x.shape
    c = cr2 // (block * block)
    y = x.reshape(n, h, w, block, block, c).permute(0, 1, 3, 2, 4, 5)
    return y.reshape(n, h * block, w * block, c)


def register() -> None:
    """Define ``pcarn_tfl::depth_to_space``, and its lowering when litert-torch is installed."""
    global _REGISTERED
    if _REGISTERED:
        return

    @torch.library.custom_op("pcarn_tfl::depth_to_space", mutates_args=())
    def depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
        return _reference_depth_to_space(x, block).clone()

    @torch.library.register_fake("pcarn_tfl::depth_to_space")
    def _(x: torch.Tensor, block: int) -> torch.Tensor:
        n, h, w, cr2 = x.shape
        return x.new_empty(n, h * block, w * block, cr2 // (block * block))

    _REGISTERED = True
    try:
        from litert_converter.mlir import ir
        from litert_converter.mlir.dialects import stablehlo
        from litert_torch.backend.lowerings import registry
        from litert_torch.backend.lowerings import utils as lowering_utils
    except ImportError:
        return

    @registry.lower(torch.ops.pcarn_tfl.depth_to_space.default)
    def _lower(lctx, x, block: int):
        i32 = ir.IntegerType.get_signless(32)
        attributes = ir.DictAttr.get({"block_size": ir.IntegerAttr.get(i32, block)})
        return stablehlo.custom_call(
            result=lowering_utils.node_meta_to_ir_types(lctx.node),
            inputs=[x],
            call_target_name=ir.StringAttr.get("tfl.depth_to_space"),
            has_side_effect=ir.BoolAttr.get(False),
            backend_config=ir.StringAttr.get(str(attributes)),
        )


def crd_to_dcr_permutation(channels: int, block: int) -> torch.Tensor:
    """Index list: new channel (i*r+j)*C + c takes old channel c*r*r + i*r + j."""
    r2 = block * block
    return torch.tensor([c * r2 + k for k in range(r2) for c in range(channels)])


class NativeShuffleStage(nn.Module):
    """conv -> ReLU -> DEPTH_TO_SPACE on NHWC tensors, equal to conv -> ReLU -> pixel_shuffle."""

    def __init__(self, conv: nn.Conv2d, block: int) -> None:
        super().__init__()
        self.block = block
        self.out_channels = conv.out_channels // (block * block)
        self.grouped = conv.groups > 1
        self.conv = nn.Conv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding, groups=conv.groups
        )
        with torch.no_grad():
            if self.grouped:
                self.conv.load_state_dict(conv.state_dict())
            else:
                order = crd_to_dcr_permutation(self.out_channels, block)
                self.conv.weight.copy_(conv.weight[order])
                self.conv.bias.copy_(conv.bias[order])

    def forward(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x_nhwc.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        if self.grouped:  # exact channel reorder CRD -> DCR, every tensor rank 4
            n, h, w, _ = y.shape
            r2 = self.block * self.block
            y = (
                y.reshape(n, h * w, self.out_channels, r2)
                .transpose(2, 3)
                .reshape(n, h, w, r2 * self.out_channels)
            )
        return torch.ops.pcarn_tfl.depth_to_space(y, self.block)


class ExitShuffleStage(nn.Module):
    """The last stage with the exit conv folded in (``export/exit_at_lr.py``): conv -> ReLU -> exit_r
    -> DEPTH_TO_SPACE. exit_r reads the stage conv's channels in PyTorch's order (no reorder, even for
    grouped heads) and writes its 3 r^2 channels in TFLite's DCR order, so one native op finishes."""

    def __init__(self, conv: nn.Conv2d, exit_conv: nn.Conv2d, block: int) -> None:
        from export.exit_at_lr import exit_weights

        super().__init__()
        self.block = block
        self.conv = conv
        weight, bias = exit_weights(exit_conv, block)
        order = crd_to_dcr_permutation(exit_conv.out_channels, block)
        self.exit_r = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
        with torch.no_grad():
            self.exit_r.weight.copy_(weight[order])
            self.exit_r.bias.copy_(bias[order])

    def forward(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        z = F.relu(self.conv(x_nhwc.permute(0, 3, 1, 2)))
        return torch.ops.pcarn_tfl.depth_to_space(self.exit_r(z).permute(0, 2, 3, 1), self.block)


class NHWCNativeHead(nn.Module):
    """A DeployHead taking and returning NHWC, with native depth-to-space upsampling stages;
    ``exit_at_lr`` folds the exit conv into the last stage."""

    def __init__(self, head, exit_at_lr: bool = False) -> None:
        super().__init__()
        register()
        net = head.net
        self.net = net
        self.input_mean = head.input_mean
        upsample = net.heads[f"x{head.scale}"]
        pairs = list(zip(upsample.stages, upsample.factors, strict=True))
        self.exit_at_lr = exit_at_lr
        stages = [NativeShuffleStage(c, r) for c, r in (pairs[:-1] if exit_at_lr else pairs)]
        if exit_at_lr:
            stages.append(ExitShuffleStage(pairs[-1][0], net.exit, pairs[-1][1]))
        self.stages = nn.ModuleList(stages)

    def forward(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        y = self.net.trunk(x_nhwc.permute(0, 3, 1, 2) - self.input_mean).permute(0, 2, 3, 1)
        for stage in self.stages:
            y = stage(y)
        if self.exit_at_lr:
            return y
        return self.net.exit(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
