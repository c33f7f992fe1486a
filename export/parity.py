"""Parity: run each exported file in its runtime on real images and compare with PyTorch.

Thresholds: fp32 max abs error <= 1e-4; fp16 PSNR >= 45 dB against fp32 PyTorch. Beside them, what a
user sees: PSNR-Y and LPIPS of the file's 8-bit output against PyTorch's (inf and 0 when identical).
Core ML cannot run on Linux; there every weight in the ML Program is compared with PyTorch (exact
for fp32, equal to the float16 rounding for fp16) and its conv sequence with the ONNX graph's.
"""

from __future__ import annotations

import copy
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
    head: DeployHead,
    runner,
    path: Path,
    size: tuple[int, int],
    precision: str,
    model,
    cache: dict | None = None,
) -> dict:
    """``runner(path, threads)`` loads the file once for every photo; PyTorch's outputs are kept in
    ``cache`` (one dict per head) so a head's other files reuse them."""
    cache = {} if cache is None else cache
    run = runner(path, None)
    reference_model = None
    rows = {}
    for name, x in parity_inputs(size).items():
        key = ("parity-reference", name, size, head.scale)
        if key not in cache:
            # channels-last: the same fp32 arithmetic, about 1.8x faster for PCARN-M on CPU
            if reference_model is None:
                reference_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
            with torch.inference_mode():
                lr = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
                cache[key] = reference_model(lr, head.scale).contiguous().numpy()
        rows[name] = compare(cache[key], run(x))
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


def _dequantized_weights(weights: dict) -> dict[str, np.ndarray]:
    """int8 weights (quantized data, scale, zero point per output channel) back in float32."""
    out = {}
    for name, meta in weights.items():
        if not name.endswith("_quantized_data"):
            continue
        base = name.removesuffix("_quantized_data")
        if base + "_scale" not in weights:  # a scalar-scaled constant (not a conv weight)
            continue
        q = np.asarray(meta.val).astype(np.float32)
        shape = (-1,) + (1,) * (q.ndim - 1)
        scale = np.asarray(weights[base + "_scale"].val, dtype=np.float32).reshape(shape)
        zero = np.asarray(weights[base + "_zero_point"].val, dtype=np.float32).reshape(shape)
        out[base] = (q - zero) * scale
        out[base + "#step"] = np.broadcast_to(scale, q.shape)
    return out


def coreml_static_parity(head: DeployHead, path: Path, precision: str, onnx_path: Path | None) -> dict:
    """Weights equal PyTorch's, and the conv sequence equals the ONNX graph's."""
    from export.checks import coreml_program, coreml_weights

    model, operations = coreml_program(path)
    weights = coreml_weights(model)
    by_name = {}
    for name, meta in weights.items():
        key = name.removesuffix("_to_fp16")
        by_name[key] = np.asarray(meta.val)
    steps = {}
    if precision == "int8":
        dequantized = _dequantized_weights(weights)
        steps = {k.removesuffix("#step"): v for k, v in dequantized.items() if k.endswith("#step")}
        by_name.update({k: v for k, v in dequantized.items() if not k.endswith("#step")})
    mismatched, missing = [], []
    for name, param in head.net.named_parameters():
        key = "net_" + name.replace(".", "_")
        expected = param.detach().numpy()
        if precision != "fp32":
            expected = expected.astype(np.float16)
        got, step = by_name.get(key), None
        if got is None and precision == "int8":
            # int8 weights are named after their cast; a conv fused with its ReLU gains a "_0"
            stem, leaf = key.rsplit("_", 1)
            for candidate in (key, f"{stem}_0_{leaf}"):
                if candidate in by_name or candidate + "_cast_fp16" in by_name:
                    found = candidate if candidate in by_name else candidate + "_cast_fp16"
                    got, step = by_name[found], steps.get(found)
                    break
        if got is None:
            missing.append(name)
        elif got.shape != expected.shape:
            mismatched.append(name)
        elif step is not None:  # an int8 weight: within one quantization step of PyTorch's
            if np.any(np.abs(got - expected.astype(np.float32)) > 1.001 * step + 1e-6):
                mismatched.append(name)
        elif not np.array_equal(got, expected):
            mismatched.append(name)

    def weight_shape(name: str) -> tuple[int, ...]:
        return tuple(np.asarray(weights.get(name, weights.get(name + "_quantized_data")).val).shape)

    coreml_convs = [
        weight_shape(op.inputs["weight"].arguments[0].name) for op in operations if op.type == "conv"
    ]
    sequence_note = "no ONNX file in this run to compare the op sequence with"
    same_sequence = None
    if onnx_path is not None and onnx_path.exists():
        onnx = require("onnx")
        from onnx import numpy_helper

        graph = onnx.load(str(onnx_path)).graph
        inits = {i.name: numpy_helper.to_array(i).shape for i in graph.initializer}
        # fp16 weights arrive through a Cast, int8 ones through a DequantizeLinear
        casts = {n.output[0]: n.input[0] for n in graph.node if n.op_type in ("Cast", "DequantizeLinear")}
        onnx_convs = [
            tuple(inits[casts.get(n.input[1], n.input[1])]) for n in graph.node if n.op_type == "Conv"
        ]
        props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
        if props.get("exit_at_lr") == "true":  # that file's exit conv runs before the last shuffle
            onnx_convs, coreml_convs = onnx_convs[:-1], coreml_convs[:-1]
        same_sequence = onnx_convs == coreml_convs
        sequence_note = (
            f"{len(coreml_convs)} convs in the same order and shapes as the ONNX graph"
            if same_sequence
            else "conv sequence differs from the ONNX graph"
        )
    passed = not mismatched and not missing and same_sequence is not False
    how = {"fp32": " exactly", "fp16": " (fp16-rounded)", "int8": " (int8 weights within one step)"}[
        precision
    ]
    detail = (
        f"{len(list(head.net.parameters())) - len(mismatched) - len(missing)} of "
        f"{len(list(head.net.parameters()))} weights equal PyTorch{how}; {sequence_note}"
    )
    if missing or mismatched:
        detail += f"; first problem: {(missing or mismatched)[0]}"
    return {"ran": False, "passed": passed, "rule": detail}
