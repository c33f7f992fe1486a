"""Which accelerators an ExecuTorch ``.pte`` can run on: the delegates its program was lowered to,
read back from the file (``export/executorch/file.py``). A ``.pte`` runs only what was lowered into it:
these files are lowered to XNNPACK (the CPU); a phone GPU (Vulkan) or the Neural Engine (Core ML)
need their own lowering, which these files do not carry.
"""

from __future__ import annotations

from pathlib import Path

from export.accelerators import Verdict
from export.executorch.file import XNNPACK, PTEFile
from export.executorch.lowered import check_lowered

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


def _lowered(path: Path, backend: str) -> tuple[bool, str]:
    """Whether all of ``forward`` is in the one ``backend`` delegate (the file's own check)."""
    delegated = check_lowered(path, backend).checks["delegated"]
    return bool(delegated["passed"]), delegated["detail"]


def vulkan_accelerators(path: Path, precision: str) -> dict[str, Verdict]:
    whole, detail = _lowered(path, "vulkan")
    return {
        "cpu": Verdict("none", "a Vulkan program: the CPU runs the XNNPACK .pte instead", SOURCE),
        "mobile_gpu": Verdict("full" if whole else "partial", f"Vulkan: {detail}", SOURCE),
        "npu": Verdict("none", "Vulkan targets GPUs", SOURCE),
        "neural_engine": Verdict("n/a", "Apple devices: the .coreml.pte or the .mlpackage", "-"),
    }


def coreml_pte_accelerators(path: Path, precision: str) -> dict[str, Verdict]:
    whole, detail = _lowered(path, "coreml")
    engine = (
        f"Core ML ({precision} compute; it picks the Neural Engine or GPU per op on the device): {detail}"
    )
    return {
        "cpu": Verdict("full" if whole else "partial", "Core ML also runs every op on the CPU", SOURCE),
        "mobile_gpu": Verdict(
            "not checked", "Core ML chooses GPU or Neural Engine per op on the device", "-"
        ),
        "npu": Verdict("n/a", "Apple's NPU is the Neural Engine (its own column)", "-"),
        "neural_engine": Verdict("full" if whole else "partial", engine, SOURCE),
    }
