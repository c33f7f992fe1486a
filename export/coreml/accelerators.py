"""Which Apple compute units a Core ML package can use, read from its ML Program (no device needed):
the Neural Engine computes in fp16 only (fp32 programs run on the GPU or CPU; coremltools guide,
"Typed Execution"), takes no tensor above rank 5, and runs int8 x int8 convolutions from the A17 Pro
and M4 on (coremltools guide, "Quantizing weights and activations"); earlier Neural Engines run W8A8
programs with their weights dequantized to fp16. Which units Core ML finally picks per op is decided
when the model compiles on the device, so the GPU column is not claimed here.
"""

from __future__ import annotations

from pathlib import Path

from export.accelerators import Verdict
from export.coreml.checks import coreml_program
from export.coreml.exporter import read_metadata
from export.optional import require

ANE_MAX_RANK = 5
SOURCE = "coremltools guides: Typed Execution; Quantizing weights and activations; rank <= 5"


def coreml_accelerators(path: Path, precision: str) -> dict[str, Verdict]:
    ct = require("coremltools")
    _, operations = coreml_program(path)
    types = ct.proto.MIL_pb2.DataType
    outputs = [op.outputs[0].type.tensorType for op in operations if op.outputs and op.type == "conv"]
    fp32 = sum(1 for t in outputs if t.dataType == types.FLOAT32)
    ranks = [len(o.type.tensorType.dimensions) for op in operations for o in op.outputs]
    max_rank = max(ranks, default=0)
    unsupported = [f"rank-{max_rank} tensors"] if max_rank > ANE_MAX_RANK else []
    if fp32:
        unsupported.append(f"fp32 compute ({fp32} conv)")
        engine = Verdict("none", "fp32 program: Core ML runs it on the GPU or CPU", SOURCE, unsupported)
    elif precision == "int8":
        detail = (
            "W8A8: int8 x int8 convolutions on A17 Pro / M4 and later, weights dequantized to fp16 before"
        )
        engine = Verdict("partial" if unsupported else "full", detail, SOURCE, unsupported)
    else:
        detail = f"fp16 program, max tensor rank {max_rank}"
        engine = Verdict("partial" if unsupported else "full", detail, SOURCE, unsupported)
    sizes = read_metadata(path).get("dynamic")
    if sizes:  # enumerated shapes keep the Neural Engine; flexible ranges may drop it
        engine.detail += f"; {sizes} (enumerated shapes)"
    return {
        "cpu": Verdict("full", "Core ML runs every ML Program op on the CPU", SOURCE),
        "mobile_gpu": Verdict(
            "not checked", "Core ML chooses GPU or Neural Engine per op on the device", "-"
        ),
        "npu": Verdict("n/a", "Apple's NPU is the Neural Engine (its own column)", "-"),
        "neural_engine": engine,
    }
