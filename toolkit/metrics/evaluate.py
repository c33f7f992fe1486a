"""PSNR-Y / SSIM-Y / LPIPS of a model against bicubic on a set of HR photos, per scale."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from models import PCARN
from toolkit.data import (
    HELD_OUT,
    HELD_OUT_CROP,
    HELD_OUT_LONG_SIDE,
    bicubic_downscale,
    bicubic_upscale,
    fit_long_side,
    list_images,
    load_rgb8,
    mod_crop,
)
from toolkit.errors import PcarnError
from toolkit.images import to_uint8
from toolkit.inference import upscale_rgb
from toolkit.metrics.fidelity import psnr_y, ssim_y
from toolkit.metrics.lpips import lpips_rgb8

# Natural photos bundled with scikit-image; the toolkit's validation set (never trained on).
SKIMAGE_VALIDATION = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")


def skimage_validation() -> dict[str, np.ndarray]:
    try:
        import skimage
    except ImportError:
        raise PcarnError("--val skimage needs scikit-image: pip install 'pcarn-toolkit[train]'") from None
    folder = Path(skimage.__file__).parent / "data"
    images = {}
    for name in SKIMAGE_VALIDATION:
        matches = sorted(folder.glob(f"{name}.*"))
        if not matches:
            raise PcarnError(f"scikit-image does not ship {name} in {folder}")
        images[name] = load_rgb8(matches[0])
    return images


def held_out_validation(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """The held-out Debian photos (``toolkit.data.HELD_OUT``) found in ``folder``, shrunk and
    centre-cropped the same way every time."""
    found = {p.name: p for p in list_images(folder)}
    missing = [name for name in HELD_OUT if name not in found]
    if missing:
        raise PcarnError(
            f"held-out photo {missing[0]} not in {folder} (shared/data/debian-photos.sh makes it)"
        )
    images = {}
    for name in HELD_OUT:
        rgb = fit_long_side(load_rgb8(found[name]), HELD_OUT_LONG_SIDE)
        h, w = rgb.shape[:2]
        top, left = max(0, (h - HELD_OUT_CROP) // 2), max(0, (w - HELD_OUT_CROP) // 2)
        images[Path(name).stem] = np.ascontiguousarray(
            rgb[top : top + HELD_OUT_CROP, left : left + HELD_OUT_CROP]
        )
    return images


def validation_images(spec: str | os.PathLike) -> dict[str, np.ndarray]:
    """``skimage`` (the five bundled photos), ``held-out:DIR`` (the held-out photos in DIR) or a
    folder of HR images, as uint8 RGB by name."""
    if str(spec) == "skimage":
        return skimage_validation()
    if str(spec).startswith("held-out:"):
        return held_out_validation(str(spec).removeprefix("held-out:"))
    return {p.stem: load_rgb8(p) for p in list_images(spec)}


class Upscaler(Protocol):
    """Anything that super-resolves like a model: an exported file (``export.file_model``)."""

    def upscale(self, rgb: np.ndarray, scale: int) -> np.ndarray: ...


def evaluate(
    model: PCARN | Upscaler,
    images: dict[str, np.ndarray],
    scales: tuple[int, ...],
    *,
    tile: int = 0,
    lpips: bool = True,
    baseline: bool = True,
) -> dict[str, dict[str, float]]:
    """Mean PSNR-Y/SSIM-Y (and LPIPS), border = scale, of the model and (``baseline``) of bicubic,
    per scale ``xS``."""
    network = model if isinstance(model, PCARN) else None
    was_training = network is not None and network.training
    if network is not None:
        network.eval()
    results = {}
    for s in scales:
        rows = []
        for hr_full in images.values():
            hr = mod_crop(hr_full, s)
            lr8 = bicubic_downscale(hr, s)
            lr = lr8.astype(np.float32) / 255.0
            if network is not None:
                sr = upscale_rgb(network, lr, s, tile=tile)
            else:
                sr = to_uint8(model.upscale(lr, s))
            bicubic = bicubic_upscale(lr8, s) if baseline else None
            rows.append(image_scores(sr, hr, bicubic, s, lpips=lpips))
        results[f"x{s}"] = mean_scores(rows)
    if network is not None:
        network.train(was_training)
    return results


def image_scores(sr: np.ndarray, hr: np.ndarray, bic: np.ndarray | None, scale: int, *, lpips: bool) -> dict:
    """Every metric of one SR image and of its bicubic baseline (where given) against the HR photo."""
    row = {"psnr_y": psnr_y(sr, hr, scale), "ssim_y": ssim_y(sr, hr, scale)}
    if bic is not None:
        row.update(bicubic_psnr_y=psnr_y(bic, hr, scale), bicubic_ssim_y=ssim_y(bic, hr, scale))
    if lpips:
        row["lpips"] = lpips_rgb8(sr, hr, scale)
        if bic is not None:
            row["bicubic_lpips"] = lpips_rgb8(bic, hr, scale)
    return row


def mean_scores(rows: list[dict]) -> dict[str, float]:
    mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    if "bicubic_psnr_y" in mean:
        mean["gain_db"] = mean["psnr_y"] - mean["bicubic_psnr_y"]
    return mean
