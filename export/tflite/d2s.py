"""Pixel shuffle as ONE native TFLite DEPTH_TO_SPACE per upsampling stage.

PyTorch's pixel shuffle reads channels in CRD order (``c * r*r + i * r + j``); TFLite's DEPTH_TO_SPACE
reads DCR order (``(i * r + j) * C + c``). For a dense head conv, permuting its output channels (weights
and bias) makes the two equal exactly. A grouped head conv (PCARN-M, groups=4) cannot be permuted that
way without mixing groups, so there the stage inserts an exact rank-4 channel transpose
(N, H*W, C, r*r) -> (N, H*W, r*r, C) instead; the conv stays grouped and is never densified.

The head reuses the staged head's loop (``export/exit_at_lr.py``); the op is a torch custom op with
a litert-torch lowering to ``tfl.depth_to_space``, the mechanism litert-torch's own torch_tfl
lowerings use.
"""

from __future__ import annotations

import torch
from torch import nn

from export.common import DeployHead
from export.exit_at_lr import StagedHead

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


class NativeShuffleHead(StagedHead):
    """The staged head (``export/exit_at_lr.py``: the same stage loop, exit conv where the options put
    it) with each pixel shuffle as one native DEPTH_TO_SPACE on NHWC data; NCHW in and out (wrap it in
    ``export.common.NHWC`` for TFLite's layout), equal outputs.

    Dense stage convs write their channels in DCR order; a grouped stage conv keeps PyTorch's order and
    its shuffle reorders channels first (rank 4); a folded exit conv writes DCR order itself, so the last
    stage needs no reorder even for grouped heads.

    ``resizable``: the reorder is ``r*r`` strided channel slices and one concatenation instead of
    reshapes, so no tensor shape names the input's height or width and the file can be resized at
    run time (``export/tflite/resizable.py``); the same channels, exactly."""

    def __init__(self, head: DeployHead, exit_at_lr: bool = False, resizable: bool = False) -> None:
        super().__init__(head, exit_at_lr)
        register()
        self.resizable = resizable
        last = len(self.stages) - 1
        self.reorder = []
        convs = []
        for index, (conv, block) in enumerate(zip(self.stages, self.factors, strict=True)):
            folded_exit = index == last and self.exit_r is not None
            self.reorder.append(conv.groups > 1 and not folded_exit)
            convs.append(conv if conv.groups > 1 or folded_exit else _dcr_conv(conv, block))
        self.stages = nn.ModuleList(convs)
        if self.exit_r is not None:
            self.exit_r = _dcr_conv(self.exit_r, self.factors[-1])

    def shuffle(self, index: int, y: torch.Tensor) -> torch.Tensor:
        block = self.factors[index]
        y = y.permute(0, 2, 3, 1)
        r2 = block * block
        if self.reorder[index] and self.resizable:  # channel k*C + c is old channel c*r*r + k
            y = torch.cat([y[..., k::r2] for k in range(r2)], dim=3)
        elif self.reorder[index]:  # exact channel reorder CRD -> DCR, every tensor rank 4
            n, h, w, channels = y.shape
            y = y.reshape(n, h * w, channels // r2, r2).transpose(2, 3).reshape(n, h, w, channels)
        return torch.ops.pcarn_tfl.depth_to_space(y, block).permute(0, 3, 1, 2)


def _dcr_conv(conv: nn.Conv2d, block: int) -> nn.Conv2d:
    """A copy of a dense conv whose output channels come in DCR order for a shuffle of ``block``."""
    order = crd_to_dcr_permutation(conv.out_channels // (block * block), block)
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding)
    with torch.no_grad():
        out.weight.copy_(conv.weight[order])
        out.bias.copy_(conv.bias[order])
    return out
