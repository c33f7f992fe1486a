"""The Python API opens what the command line opens: a checkpoint or an exported file, one descriptor."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import deterministic_weights, run_cli
from PIL import Image

import pcarn
from export.pipeline import export_all
from models import build_model
from toolkit.errors import PcarnError
from toolkit.weights.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    model = deterministic_weights(build_model("pcarn-test", scales=(2,)))
    save_checkpoint(model, folder / "tiny.safetensors")
    export_all(
        model,
        folder,
        formats=["onnx", "tflite"],
        scales=[2],
        precisions=["fp32"],
        input_size=(24, 32),  # room for the receptive field: 11 px of context a side
        provenance={"variant": "pcarn-test", "path": "tiny.safetensors"},
        progress=False,
    )
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 60, 3), dtype=np.uint8)).save(folder / "photo.png")
    return folder


@pytest.mark.parametrize("name", ["pcarn-test_x2_fp32.onnx", "pcarn-test_x2_fp32.tflite"])
def test_the_api_runs_an_exported_file_as_the_cli_does(exported, name):
    opened = pcarn.open_model(exported / name)
    assert opened.scales == (2,) and opened.provenance["format"] in name
    image = pcarn.upscale(exported / "photo.png", 2, opened)
    assert image.size == (120, 96)
    result = run_cli(
        "upscale", "photo.png", "cli.png", "--scale", "2", "--model", name, "--quiet", cwd=exported
    )
    assert result.returncode == 0, result.stderr
    with Image.open(exported / "cli.png") as cli_image:
        assert np.array_equal(np.asarray(cli_image), np.asarray(image))
    # the file computes what its checkpoint computes, up to rounding to 8 bits
    from_checkpoint = pcarn.upscale(exported / "photo.png", 2, exported / "tiny.safetensors", tile=0)
    assert np.abs(np.asarray(from_checkpoint, int) - np.asarray(image, int)).max() <= 1


def test_a_file_refuses_a_scale_it_has_no_head_for(exported):
    with pytest.raises(PcarnError, match="x2 head; it cannot upscale x4"):
        pcarn.open_model(exported / "pcarn-test_x2_fp32.onnx", (4,))
    with pytest.raises(PcarnError, match="scale 4 is not supported"):
        pcarn.open_model(exported / "tiny.safetensors", (4,))
