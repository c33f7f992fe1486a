"""Every image kind Pillow reads goes in; 8-bit PNG/JPEG/WebP comes out, rounded, atomically."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pcarn.api import upscale
from toolkit.errors import PcarnError
from toolkit.images import read_image, to_uint8, write_image


def _gradient(h=10, w=12) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 20, y * 25, (x + y) * 10], axis=-1).astype(np.uint8)


def test_rounding_not_truncation():
    values = np.array([0.0, 0.4 / 255, 0.6 / 255, 127.5 / 255 + 1e-6, 1.0, 1.7, -0.2], dtype=np.float32)
    assert to_uint8(values).tolist() == [0, 0, 1, 128, 255, 255, 0]


def test_rgba_alpha_is_upscaled_bicubic_and_reattached(tiny_model, tmp_path):
    rgba = np.dstack([_gradient(), np.full((10, 12), 200, np.uint8)])
    rgba[:5, :, 3] = 0
    out = upscale(Image.fromarray(rgba, "RGBA"), 2, tiny_model)
    assert out.mode == "RGBA" and out.size == (24, 20)
    alpha = np.asarray(out)[..., 3]
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 200
    expected = Image.fromarray(rgba[..., 3]).resize((24, 20), Image.Resampling.BICUBIC)
    assert np.abs(alpha.astype(int) - np.asarray(expected).astype(int)).max() <= 1


def test_grayscale_stays_grayscale(tiny_model):
    gray = Image.fromarray(_gradient()[..., 0], "L")
    out = upscale(gray, 3, tiny_model)
    assert out.mode == "L" and out.size == (36, 30)


def test_palette_with_and_without_transparency(tiny_model, tmp_path):
    palette = Image.fromarray(_gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    assert upscale(palette, 2, tiny_model).mode == "RGB"
    path = tmp_path / "p.png"
    palette.save(path, transparency=0)
    assert upscale(Image.open(path), 2, tiny_model).mode == "RGBA"


def test_sixteen_bit_input_keeps_its_precision(tmp_path):
    data = (np.arange(120, dtype=np.uint16).reshape(10, 12) * 500).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(data).save(path)
    decoded = read_image(path)
    assert decoded.gray
    assert decoded.rgb[0, 1, 0] == pytest.approx(500 / 65535, rel=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".webp"])
def test_writes_by_suffix(suffix, tmp_path):
    path = tmp_path / f"out{suffix}"
    write_image(Image.fromarray(_gradient()), path)
    assert Image.open(path).size == (12, 10)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_jpeg_drops_alpha_with_a_warning(tmp_path, capsys):
    rgba = Image.fromarray(np.dstack([_gradient(), np.full((10, 12), 9, np.uint8)]), "RGBA")
    write_image(rgba, tmp_path / "a.jpg")
    assert "transparency dropped" in capsys.readouterr().err
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(PcarnError, match="input file not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(PcarnError, match="not an image Pillow can read"):
        read_image(tmp_path / "notes.png")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.png")
    full = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(full[: len(full) // 2])
    with pytest.raises(PcarnError, match="truncated or corrupt"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(PcarnError, match="cannot write .bmp"):
        write_image(Image.fromarray(_gradient()), tmp_path / "x.bmp")
    with pytest.raises(PcarnError, match="output folder does not exist"):
        write_image(Image.fromarray(_gradient()), tmp_path / "nope" / "x.png")
