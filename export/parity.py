"""Parity: run each exported file in its runtime on real images and compare with PyTorch.

Thresholds: fp32 max abs error <= 1e-4; fp16 PSNR >= 45 dB against fp32 PyTorch. Beside them, what a
user sees: PSNR-Y and LPIPS of the file's 8-bit output against PyTorch's (inf and 0 when identical).
Core ML cannot run on Linux; there every weight in the ML Program is compared with PyTorch (exact
for fp32, equal to the float16 rounding for fp16) and its conv sequence with the ONNX graph's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from export.common import DeployHead
from export.optional import require
from toolkit.lpips import MIN_SIDE as LPIPS_MIN_SIDE
from toolkit.lpips import lpips_rgb8
from toolkit.metrics import psnr_y
from toolkit.provenance import REPO_ROOT

FP32_MAX_ABS = 1e-4
FP16_MIN_PSNR = 45.0
SAMPLE_PHOTO = REPO_ROOT / "assets" / "rocket-lr.png"
GOLDEN_LR = REPO_ROOT.parent / "shared" / "reference" / "vectors" / "astronaut_crop.npz"


def parity_inputs(size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Real photos brought to the file's fixed input size (bicubic), as NCHW float32 in [0, 1]."""
    sources = {"rocket": np.asarray(Image.open(SAMPLE_PHOTO).convert("RGB"))}
    if GOLDEN_LR.is_file():
        with np.load(GOLDEN_LR) as data:
            sources["astronaut_golden_lr"] = data["lr"]
    h, w = size
    out = {}
    for name, rgb in sources.items():
        resized = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
        out[name] = (resized / 255.0).transpose(2, 0, 1)[None].copy()
    return out


def to_rgb8(nchw: np.ndarray) -> np.ndarray:
    """1x3xHxW float in [0, 1] (up to overshoot) -> HxWx3 uint8, rounded as ``pcarn upscale`` writes."""
    return (np.clip(nchw[0].transpose(1, 2, 0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def compare(reference: np.ndarray, output: np.ndarray) -> dict:
    """Raw float error, and what a user sees: PSNR-Y and LPIPS of the 8-bit images against PyTorch's."""
    diff = output.astype(np.float64) - reference.astype(np.float64)
    mse = float(np.mean(diff**2))
    ref8, out8 = to_rgb8(reference), to_rgb8(output)
    return {
        "max_abs": float(np.abs(diff).max()),
        "psnr_db": math.inf if mse == 0 else 10 * math.log10(1 / mse),
        "psnr_y_8bit": psnr_y(out8, ref8, 0),
        "lpips": lpips_rgb8(out8, ref8, 0) if min(ref8.shape[:2]) >= LPIPS_MIN_SIDE else None,
    }


def runtime_parity(
    head: DeployHead, runner, path: Path, size: tuple[int, int], precision: str, model
) -> dict:
    rows = {}
    for name, x in parity_inputs(size).items():
        with torch.no_grad():
            reference = model(torch.from_numpy(x), head.scale).numpy()
        rows[name] = compare(reference, runner(path, x))
    worst_abs = max(r["max_abs"] for r in rows.values())
    worst_psnr = min(r["psnr_db"] for r in rows.values())
    worst_psnr_y = min(r["psnr_y_8bit"] for r in rows.values())
    worst_lpips = max((r["lpips"] for r in rows.values() if r["lpips"] is not None), default=None)
    if precision == "fp32":
        passed, rule = worst_abs <= FP32_MAX_ABS, f"max abs error {worst_abs:.2e} <= {FP32_MAX_ABS:.0e}"
    else:
        passed, rule = worst_psnr >= FP16_MIN_PSNR, f"PSNR {worst_psnr:.1f} dB >= {FP16_MIN_PSNR} dB"
    return {
        "ran": True,
        "passed": passed,
        "rule": rule,
        "max_abs": worst_abs,
        "psnr_db": worst_psnr,
        "psnr_y_8bit": worst_psnr_y,
        "lpips": worst_lpips,
        "images": rows,
    }


def coreml_static_parity(head: DeployHead, path: Path, precision: str, onnx_path: Path | None) -> dict:
    """Weights equal PyTorch's, and the conv sequence equals the ONNX graph's."""
    ct = require("coremltools")
    from export.checks import coreml_program

    model, operations = coreml_program(path)
    weights = ct.optimize.coreml.get_weights_metadata(model, weight_threshold=0)
    by_name = {}
    for name, meta in weights.items():
        key = name.removesuffix("_to_fp16")
        by_name[key] = np.asarray(meta.val)
    mismatched, missing = [], []
    for name, param in head.net.named_parameters():
        key = "net_" + name.replace(".", "_")
        expected = param.detach().numpy()
        if precision == "fp16":
            expected = expected.astype(np.float16)
        got = by_name.get(key)
        if got is None:
            missing.append(name)
        elif got.shape != expected.shape or not np.array_equal(got, expected):
            mismatched.append(name)
    coreml_convs = [
        tuple(weights[op.inputs["weight"].arguments[0].name].val.shape)
        for op in operations
        if op.type == "conv"
    ]
    sequence_note = "no ONNX file in this run to compare the op sequence with"
    same_sequence = None
    if onnx_path is not None and onnx_path.exists():
        onnx = require("onnx")
        from onnx import numpy_helper

        graph = onnx.load(str(onnx_path)).graph
        inits = {i.name: numpy_helper.to_array(i).shape for i in graph.initializer}
        casts = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast"}
        onnx_convs = [
            tuple(inits[casts.get(n.input[1], n.input[1])]) for n in graph.node if n.op_type == "Conv"
        ]
        same_sequence = onnx_convs == coreml_convs
        sequence_note = (
            f"{len(coreml_convs)} convs in the same order and shapes as the ONNX graph"
            if same_sequence
            else "conv sequence differs from the ONNX graph"
        )
    passed = not mismatched and not missing and same_sequence is not False
    detail = (
        f"{len(list(head.net.parameters())) - len(mismatched) - len(missing)} of "
        f"{len(list(head.net.parameters()))} weights equal PyTorch"
        f"{' (fp16-rounded)' if precision == 'fp16' else ' exactly'}; {sequence_note}"
    )
    if missing or mismatched:
        detail += f"; first problem: {(missing or mismatched)[0]}"
    return {"ran": False, "passed": passed, "rule": detail}
