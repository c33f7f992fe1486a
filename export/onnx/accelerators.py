"""Which accelerators an ONNX file can run on, from ONNX Runtime's own mobile usability checker
(``onnxruntime.tools.mobile_helpers.usability_checker``, the code behind
``python -m onnxruntime.tools.check_onnx_model_mobile_usability``), run on the file after ONNX
Runtime's basic optimisations as that tool does. NNAPI is Android's path to its GPU and NPU drivers;
the Core ML execution provider (ML Program) is iOS's path to the Neural Engine and GPU. The checker
matches op types only: the DepthToSpace mode, which NNAPI and Core ML's NeuralNetwork format take in
DCR only (their support tables' caveat), is checked here as well.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from export.accelerators import Verdict
from export.onnx.dcr import attribute
from export.optional import require

CHECKER = "ONNX Runtime mobile usability checker ({table})"


def onnx_accelerators(path: Path, precision: str) -> dict[str, Verdict]:
    require("onnx")
    from onnxruntime.tools.mobile_helpers import usability_checker as checker
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    logging.getLogger("usability_checker").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="pcarn-ort-check-") as tmp:
        optimized = Path(tmp) / "basic.onnx"
        optimize_model(Path(path), optimized)
        model = ModelProtoWithShapeInfo(optimized).model_with_shape_info
    crd = [
        n.name or n.output[0]
        for n in model.graph.node
        if n.op_type == "DepthToSpace" and attribute(n, "mode") == "CRD"
    ]
    nnapi = _verdict(checker.check_nnapi_partitions(model, True), "nnapi_supported_ops.md", crd)
    coreml = _verdict(
        checker.check_coreml_partitions(model, True, "coreml_supported_mlprogram_ops.md"),
        "coreml_supported_mlprogram_ops.md",
        [],
    )
    return {
        "cpu": Verdict("full", "ONNX Runtime's CPU provider runs every op (parity ran here)", "ONNX Runtime"),
        "mobile_gpu": _through_nnapi(nnapi),
        "npu": _through_nnapi(nnapi),
        "neural_engine": Verdict(
            coreml.status, f"Core ML EP (ML Program): {coreml.detail}", coreml.source, coreml.unsupported
        ),
    }


def _through_nnapi(nnapi: Verdict) -> Verdict:
    return Verdict(nnapi.status, f"NNAPI: {nnapi.detail}", nnapi.source, list(nnapi.unsupported))


def _verdict(info, table: str, crd: list[str]) -> Verdict:
    unsupported = sorted(op.split(":")[-1] for op in info.unsupported_ops)
    if crd:
        unsupported.append("DepthToSpace(CRD)")
    covered = info.num_supported_nodes - len(crd)
    detail = f"{info.num_partitions} partition(s) holding {covered} of {info.num_nodes} nodes"
    if info.num_unsupported_nodes_due_to_rank:
        detail += f"; {info.num_unsupported_nodes_due_to_rank} off for their rank"
        unsupported.append("rank > limit")
    if info.nodes_unsupported_due_to_dynamic_input:
        detail += f"; {info.nodes_unsupported_due_to_dynamic_input} off for dynamic input shapes"
        unsupported.append("dynamic shapes")
    if covered <= 0:
        status = "none"
    elif info.num_partitions == 1 and covered == info.num_nodes:
        status = "full"
    else:
        status = "partial"
    return Verdict(status, detail, CHECKER.format(table=table), unsupported)
