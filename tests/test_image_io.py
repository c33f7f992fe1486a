"""``pcarn export --io image``: uint8 RGB NHWC in and out with scaling and rounding inside, for every
format; parity is PyTorch's rounded output within one level, at three sizes with ``--dynamic``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from export.common import DeployHead
from export.formats import get_format
from export.image_io import ImageIO, rounded_levels
from export.pipeline import export_all
from models import build_model
from tests.conftest import deterministic_weights
from toolkit.images import SAMPLE_PHOTO

FORMATS = ["onnx", "tflite", "executorch", "coreml"]


def _export(out, formats, precisions, options, val="skimage"):
    model = deterministic_weights(build_model("pcarn-test"))
    manifest = export_all(
        model,
        out,
        formats=formats,
        scales=[2],
        precisions=precisions,
        input_size=(24, 32),
        provenance={"variant": "pcarn-test", "path": "memory"},
        options=options,
        progress=False,
        calib_samples=2,
        val=val,
    )
    return model, out, manifest


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """Every format in fp32, image input and output and dynamic sizes together (fp16 and int8:
    ``test_fp16_and_int8_image_files_pass``)."""
    return _export(tmp_path_factory.mktemp("image-io"), FORMATS, ["fp32"], {"io": "image", "dynamic": True})


def test_every_image_file_passes_its_checks_and_parity(image_files):
    _, _, manifest = image_files
    failed = [
        (e["path"], e.get("reason"), e.get("checks"), e.get("parity"))
        for e in manifest["files"]
        if not e["passed"]
    ]
    assert manifest["all_passed"], failed
    assert {e["format"] for e in manifest["files"]} == set(FORMATS)
    for entry in manifest["files"]:
        assert entry["input_layout"] == "NHWC uint8" and entry["input_shape"] == [1, 24, 32, 3]
        parity = entry["parity"]
        if entry["format"] != "coreml" and entry["precision"] != "int8":  # judged in levels at three sizes
            assert "level(s) of PyTorch's rounded output" in parity["rule"]
            assert parity["max_levels"] <= 1 and "at 24x32, 13x15, 17x19" in parity["rule"]


def test_image_files_take_and_return_pixels(image_files):
    """An app's bitmap goes in as it is; what comes out is PyTorch's output rounded to 8 bits."""
    model, out, _ = image_files
    photo = np.asarray(Image.open(SAMPLE_PHOTO).convert("RGB").resize((29, 21)))[None]  # 21x29, any size
    with torch.no_grad():
        expected = ImageIO(DeployHead(model, 2)).eval()(torch.from_numpy(photo)).numpy()
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(out / "pcarn-test_x2_fp32.onnx"))
    (sr,) = session.run(None, {"lr": photo})
    assert sr.dtype == np.uint8 and sr.shape == (1, 42, 58, 3)
    assert np.abs(sr.astype(int) - expected.astype(int)).max() <= 1
    for name in ("pcarn-test_x2_fp32.tflite", "pcarn-test_x2_fp32.pte"):
        fmt = get_format(name.rsplit(".", 1)[1].replace("pte", "executorch"))
        assert fmt.random_input(out / name, (12, 16)).dtype == np.uint8  # what pcarn bench feeds
        run = fmt.runner(out / name, 1)  # the toolkit's float interface, pixels converted around it
        got = np.rint(run(photo.transpose(0, 3, 1, 2) / np.float32(255)) * 255).transpose(0, 2, 3, 1)
        assert np.abs(got - expected).max() <= 1, name


def test_coreml_image_file_declares_image_types(image_files):
    _, out, manifest = image_files
    entry = next(e for e in manifest["files"] if e["path"] == "pcarn-test_x2_fp32.mlpackage")
    assert entry["checks"]["image_io"]["passed"]
    assert entry["checks"]["image_io"]["detail"] == "lr: imageType RGB; sr: imageType RGB"
    assert get_format("coreml").read_metadata(out / entry["path"])["io"] == "image"


def test_rounding_matches_how_images_are_written():
    y = torch.tensor([-0.2, 0.0, 0.5 / 255, 1.49 / 255, 0.999, 1.3])
    assert rounded_levels(y).tolist() == [0.0, 0.0, 0.0, 1.0, 255.0, 255.0]


@pytest.mark.slow
def test_fp16_and_int8_image_files_pass(tmp_path):
    """fp16 within one level; int8 judged by its PSNR-Y cost, its pixel conversions declared as the
    only float ops beside the input mean."""
    formats = ["onnx", "tflite", "coreml"]
    val = tmp_path / "val"  # one small photo: the cost is measured, not the budget's margin
    val.mkdir()
    Image.open(SAMPLE_PHOTO).convert("RGB").resize((160, 120)).save(val / "rocket.png")
    _, _, manifest = _export(tmp_path / "out", formats, ["fp16", "int8"], {"io": "image"}, val)
    failed = [
        (e["path"], e.get("reason"), e.get("checks"), e.get("parity"))
        for e in manifest["files"]
        if not e["passed"]
    ]
    assert manifest["all_passed"] and len(manifest["files"]) == 6, failed
    int8 = [e for e in manifest["files"] if e["precision"] == "int8" and e["format"] != "coreml"]
    assert all("pixel conversions" in e["checks"]["integer_graph"]["detail"] for e in int8)
