"""PSNR-Y / SSIM-Y conventions with known values."""

import math

import numpy as np
import pytest

from toolkit.metrics.fidelity import psnr_y, rgb_to_y, ssim_y


def _photo(seed=0, shape=(40, 50, 3)):
    rng = np.random.default_rng(seed)
    return rng.integers(30, 220, shape).astype(np.uint8)


def test_y_is_bt601_studio_range():
    assert rgb_to_y(np.array([[[0, 0, 0]]], np.uint8))[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(np.array([[[255, 255, 255]]], np.uint8))[0, 0] == pytest.approx(235.0)
    assert rgb_to_y(np.array([[[255, 0, 0]]], np.uint8))[0, 0] == pytest.approx(16 + 65.481)


def test_identical_images_give_infinite_psnr_and_unit_ssim():
    img = _photo()
    assert psnr_y(img, img, 2) == math.inf
    assert ssim_y(img, img, 2) == pytest.approx(1.0)


def test_constant_offset_gives_known_psnr():
    hr = _photo()
    sr = hr + np.uint8(10)  # every channel +10 -> Y moves by 10 * (65.481+128.553+24.966)/255
    dy = 10 * (65.481 + 128.553 + 24.966) / 255
    assert psnr_y(sr, hr, 0) == pytest.approx(20 * math.log10(255 / dy))


def test_border_is_cropped():
    hr = _photo()
    sr = hr.copy()
    sr[:3] = 0  # damage only a 3-pixel top band
    assert psnr_y(sr, hr, 3) == math.inf
    assert psnr_y(sr, hr, 2) < 40


def test_matches_scikit_image_conventions():
    skimage = pytest.importorskip("skimage")
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    hr = skimage.data.astronaut()[:200, :200]
    noise = np.random.default_rng(0).integers(-12, 13, hr.shape)
    sr = np.clip(hr.astype(int) + noise, 0, 255).astype(np.uint8)
    y_sr, y_hr = rgb2ycbcr(sr)[4:-4, 4:-4, 0], rgb2ycbcr(hr)[4:-4, 4:-4, 0]
    assert psnr_y(sr, hr, 4) == pytest.approx(peak_signal_noise_ratio(y_hr, y_sr, data_range=255), abs=1e-9)
    expected = structural_similarity(
        y_hr, y_sr, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim_y(sr, hr, 4) == pytest.approx(expected, abs=1e-9)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_y(_photo(shape=(4, 4, 3)), _photo(shape=(4, 5, 3)), 0)
