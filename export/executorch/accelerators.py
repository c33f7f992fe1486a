"""Which accelerators an ExecuTorch ``.pte`` can run on: the delegates its program was lowered to,
read back from the file (``export/executorch/file.py``). A ``.pte`` runs only what was lowered into it:
these files are lowered to XNNPACK (the CPU); a phone GPU (Vulkan) or the Neural Engine (Core ML)
need their own lowering, which these files do not carry.
"""

from __future__ import annotations

from pathlib import Path

from export.accelerators import Verdict
from export.executorch.file import XNNPACK, PTEFile

SOURCE = "the .pte's delegate list and XNNPACK graph (ExecuTorch flatbuffer)"


def executorch_accelerators(path: Path, precision: str) -> dict[str, Verdict]:
    pte = PTEFile.read(path)
    outside = sorted(set(pte.kernel_calls()))
    delegates = pte.delegate_ids()
    transposes = [body for kind, body in pte.xnnpack_nodes() if kind == "XNNStaticTranspose"]
    max_rank = max((t["num_dims"] for t in transposes), default=4)
    status = "full" if delegates == [XNNPACK] * len(delegates) and delegates and not outside else "partial"
    lowered = f"lowered to {', '.join(sorted(set(delegates))) or 'no delegate'}"
    cpu = Verdict(status, f"{lowered}; max transpose rank {max_rank}", SOURCE, outside)
    others = "not lowered for it: this file holds only its XNNPACK program"
    return {
        "cpu": cpu,
        "mobile_gpu": Verdict("none", f"Vulkan {others}", SOURCE, ["XNNPACK-only program"]),
        "npu": Verdict("none", f"no NPU backend {others}", SOURCE, ["XNNPACK-only program"]),
        "neural_engine": Verdict("none", f"Core ML {others}", SOURCE, ["XNNPACK-only program"]),
    }
