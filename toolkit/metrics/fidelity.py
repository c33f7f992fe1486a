"""PSNR and SSIM on the Y channel, the convention of the paper's tables (and BasicSR's).

Y is ITU-R BT.601 studio range as MATLAB's ``rgb2ycbcr`` computes it (16..235 for 8-bit input), a
border of ``scale`` pixels is cropped, and SSIM uses an 11x11 Gaussian window with sigma 1.5.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb_to_y(rgb8: np.ndarray) -> np.ndarray:
    """uint8 (or 0..255 float) HxWx3 RGB -> float64 Y in [16, 235]."""
    return 16.0 + rgb8.astype(np.float64) @ _Y_WEIGHTS


def _crop(y: np.ndarray, border: int) -> np.ndarray:
    return y[border:-border, border:-border] if border > 0 else y


def psnr_y(sr8: np.ndarray, hr8: np.ndarray, border: int) -> float:
    """PSNR in dB between two uint8 RGB images on Y; ``inf`` when identical."""
    if sr8.shape != hr8.shape:
        raise ValueError(f"shapes differ: {sr8.shape} vs {hr8.shape}")
    diff = _crop(rgb_to_y(sr8), border) - _crop(rgb_to_y(hr8), border)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _gaussian_filter(x: torch.Tensor) -> torch.Tensor:
    """'Valid' 11x11 Gaussian filtering as two 1-D passes: the 2-D window is the outer product of
    the 1-D one, so the result is the same, in a fifth of the multiply-adds."""
    g = _gaussian_1d()
    return F.conv2d(F.conv2d(x, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))


def ssim_y(sr8: np.ndarray, hr8: np.ndarray, border: int) -> float:
    """SSIM (Wang et al. 2004) on Y with 'valid' 11x11 Gaussian windows, K1=0.01, K2=0.03, L=255."""
    if sr8.shape != hr8.shape:
        raise ValueError(f"shapes differ: {sr8.shape} vs {hr8.shape}")
    a = torch.from_numpy(_crop(rgb_to_y(sr8), border))[None, None]
    b = torch.from_numpy(_crop(rgb_to_y(hr8), border))[None, None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _gaussian_filter(a), _gaussian_filter(b)
    var_a = _gaussian_filter(a * a) - mu_a**2
    var_b = _gaussian_filter(b * b) - mu_b**2
    cov = _gaussian_filter(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())
