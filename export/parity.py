"""Parity: run each exported file in its runtime on real images and compare with PyTorch.

Thresholds: fp32 max abs error <= 1e-4; fp16 PSNR >= 45 dB against fp32 PyTorch; a file with image
input and output (``--io image``), fp32 or fp16: its pixels within 1 level of PyTorch's rounded output.
Beside them, what a user sees: PSNR-Y and LPIPS of the file's 8-bit output against PyTorch's (inf
and 0 when identical).
A format whose files cannot run here may give a static parity instead (Core ML on Linux:
``export/coreml/parity.py``).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from export.common import DeployHead
from export.image_io import MAX_LEVEL_ERROR
from toolkit.images import SAMPLE_PHOTO
from toolkit.metrics.fidelity import psnr_y
from toolkit.metrics.lpips import MIN_SIDE as LPIPS_MIN_SIDE
from toolkit.metrics.lpips import lpips_rgb8
from toolkit.provenance import REPO_ROOT

FP32_MAX_ABS = 1e-4
FP16_MIN_PSNR = 45.0
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


def parity_sizes(size: tuple[int, int], dynamic: bool) -> list[tuple[int, int]]:
    """The export size; for a ``--dynamic`` file also two smaller sizes of other aspect ratios (a
    bounded file takes none larger than its export size)."""
    if not dynamic:
        return [size]
    h, w = size
    others = [(h // 2 + 1, min(w, w // 3 + 5)), (max(2, (3 * h) // 4 - 1), min(w, w // 2 + 3))]
    return list(dict.fromkeys([size, *others]))


def compare(reference: np.ndarray, output: np.ndarray) -> dict:
    """Raw float error, and what a user sees: PSNR-Y and LPIPS of the 8-bit images against PyTorch's."""
    if output.shape != reference.shape:
        shapes = f"output shape {list(output.shape)}, PyTorch's {list(reference.shape)}"
        return {"max_abs": math.inf, "psnr_db": -math.inf, "psnr_y_8bit": 0.0, "lpips": None, "error": shapes}
    diff = output.astype(np.float64) - reference.astype(np.float64)
    mse = float(np.mean(diff**2))
    ref8, out8 = to_rgb8(reference), to_rgb8(output)
    return {
        "max_abs": float(np.abs(diff).max()),
        "max_levels": int(np.abs(out8.astype(np.int16) - ref8.astype(np.int16)).max()),
        "psnr_db": math.inf if mse == 0 else 10 * math.log10(1 / mse),
        "psnr_y_8bit": psnr_y(out8, ref8, 0),
        "lpips": lpips_rgb8(out8, ref8, 0) if min(ref8.shape[:2]) >= LPIPS_MIN_SIDE else None,
    }


def runtime_parity(
    head: DeployHead,
    runner,
    path: Path,
    sizes: list[tuple[int, int]],
    precision: str,
    model,
    cache: dict | None = None,
    *,
    image: bool = False,
) -> dict:
    """``runner(path, threads)`` loads the file once for every photo at each of ``sizes``
    (``parity_sizes``); PyTorch's outputs are kept in ``cache`` (one dict per head) so a head's
    other files reuse them. ``image``: the file returns 8-bit pixels, judged in levels."""
    cache = {} if cache is None else cache
    run = runner(path, None)
    reference_model = None
    rows = {}
    inputs = [(f"{name} {h}x{w}", (h, w), x) for h, w in sizes for name, x in parity_inputs((h, w)).items()]
    for name, size, x in inputs:
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
    worst_levels = max(r.get("max_levels", 255) for r in rows.values())
    if image:
        passed = worst_levels <= MAX_LEVEL_ERROR
        rule = f"pixels within {worst_levels} level(s) of PyTorch's rounded output (<= {MAX_LEVEL_ERROR})"
    elif precision == "fp32":
        passed, rule = worst_abs <= FP32_MAX_ABS, f"max abs error {worst_abs:.2e} <= {FP32_MAX_ABS:.0e}"
    else:
        passed, rule = worst_psnr >= FP16_MIN_PSNR, f"PSNR {worst_psnr:.1f} dB >= {FP16_MIN_PSNR} dB"
    if len(sizes) > 1:
        rule += " at " + ", ".join(f"{h}x{w}" for h, w in sizes)
    errors = [f"{name}: {r['error']}" for name, r in rows.items() if "error" in r]
    if errors:
        passed, rule = False, f"{rule}; {errors[0]}"
    return {
        "ran": True,
        "passed": passed,
        "rule": rule,
        "max_abs": worst_abs,
        "max_levels": worst_levels,
        "psnr_db": worst_psnr,
        "psnr_y_8bit": worst_psnr_y,
        "lpips": worst_lpips,
        "images": rows,
    }
