"""Which accelerators a ``.tflite`` file can run on. LiteRT's own compatibility analyzer is known to
call unsupported graphs compatible, so every op and tensor rank is read here against two sources:

- the GPU delegate's documented op list (ai.google.dev/edge/litert/performance/gpu, "GPU ML
  operations support", as of 2025-07), and
- the delegate's own compatibility rules (tensorflow/lite/tools/versioning/gpu_compatibility.cc:
  the builtins it parses, e.g. DEPTH_TO_SPACE with a block size above 1); its tensors are BHWC, so
  rank 4 at most.

An op the source handles but the documented list omits is named in the detail, not counted off.
"""

from __future__ import annotations

from pathlib import Path

from export.accelerators import Verdict
from export.tflite.checks import XNNPACK_OPS
from export.tflite.file import TFLiteFile

DOCUMENTED_GPU_OPS = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXP", "FULLY_CONNECTED",
    "LOGICAL_AND", "LOGISTIC", "LSTM", "MAX_POOL_2D", "MAXIMUM", "MINIMUM", "MUL", "PAD", "PRELU", "RELU",
    "RELU6", "RESHAPE", "RESIZE_BILINEAR", "SOFTMAX", "STRIDED_SLICE", "SUB", "TRANSPOSE_CONV",
}  # fmt: skip
# builtins gpu_compatibility.cc also handles (the subset a super-resolution graph can hold)
SOURCE_GPU_OPS = DOCUMENTED_GPU_OPS | {
    "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "TRANSPOSE", "DEQUANTIZE", "QUANTIZE", "MEAN", "SLICE", "SPLIT",
    "SPLIT_V", "TILE", "PACK", "CAST", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "TANH", "DIV", "PADV2",
}  # fmt: skip
GPU_MAX_RANK = 4
GPU_SOURCE = "LiteRT GPU delegate: documented op list and gpu_compatibility.cc (BHWC tensors, rank <= 4)"
XNNPACK_SOURCE = "XNNPACK delegate operator list (export/tflite/checks.py)"


def tflite_accelerators(path: Path, precision: str) -> dict[str, Verdict]:
    tflite = TFLiteFile.read(path)
    names = [name for name, _ in tflite.ops()]
    ranks = [len(t.shape) for t in tflite.subgraph.tensors if t.shape is not None]
    return {
        "cpu": _cpu(names),
        "mobile_gpu": _gpu(names, max(ranks, default=0)),
        "npu": Verdict(
            "not checked",
            "vendor NPU delegates (Qualcomm QNN, MediaTek NeuroPilot) publish no offline rules to check "
            "against; Android's NNAPI delegate is deprecated",
            "ai.google.dev/edge/litert/performance/delegates",
        ),
        "neural_engine": Verdict(
            "n/a", "on iOS a .tflite runs through LiteRT's Core ML delegate; use the .mlpackage", "-"
        ),
    }


def _cpu(names: list[str]) -> Verdict:
    outside = sorted(set(names) - XNNPACK_OPS)
    status = "full" if not outside else "partial"
    return Verdict(
        status, f"{len(names) - len(outside)} of {len(names)} ops in XNNPACK's list", XNNPACK_SOURCE, outside
    )


def _gpu(names: list[str], max_rank: int) -> Verdict:
    unsupported = sorted(set(names) - SOURCE_GPU_OPS)
    undocumented = sorted(set(names) & (SOURCE_GPU_OPS - DOCUMENTED_GPU_OPS))
    if max_rank > GPU_MAX_RANK:
        unsupported.append(f"rank-{max_rank} tensors")
    detail = f"{len(names)} ops, max tensor rank {max_rank}"
    if undocumented:
        detail += (
            f"; handled by the delegate's source but not in its documented list: {', '.join(undocumented)}"
        )
    if not unsupported:
        status = "full"
    elif all(n not in SOURCE_GPU_OPS for n in names):
        status = "none"
    else:
        status = "partial"
    return Verdict(status, detail, GPU_SOURCE, unsupported)
