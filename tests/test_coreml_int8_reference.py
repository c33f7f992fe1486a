"""``python -m benchmarks.coreml_int8``: the Core ML int8 program's PyTorch reference, measured like
the other formats' int8 files (PSNR-Y cost against fp32 on validation photos)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import deterministic_weights
from PIL import Image

from models import build_model

pytest.importorskip("coremltools")


def test_the_reference_cost_is_fp32_minus_the_int8_graph_on_the_photos(tmp_path):
    from benchmarks.coreml_int8 import reference_costs

    rng = np.random.default_rng(0)
    for name in ("a", "b"):  # smooth gradients with noise: photo-like, small
        ramp = np.linspace(0, 255, 64)[None, :, None] * np.ones((48, 1, 3))
        Image.fromarray(np.clip(ramp + rng.normal(0, 8, ramp.shape), 0, 255).astype(np.uint8)).save(
            tmp_path / f"{name}.png"
        )
    net = deterministic_weights(build_model("pcarn-test", scales=(2,)))
    (row,) = reference_costs(net, "tiny", (2,), (24, 32), None, str(tmp_path), samples=2)
    assert row["photos"] == ["a", "b"] and row["input_size"] == "24x32"
    fp32, int8 = row["pytorch_fp32"], row["int8_reference"]
    assert row["cost_db"] == pytest.approx(fp32["psnr_y"] - int8["psnr_y"], abs=2e-3)
    assert 0 < row["cost_db"] < 3 and int8["lpips"] >= 0  # rounding costs something, not the picture


@pytest.mark.parametrize(
    "args, named",
    [
        (["--model", "no-such-model", "--input-size", "12x16"], "no-such-model"),
        (["--model", "pcarn-m", "--int8-budget", "-1"], "-1"),
        (["--model", "pcarn-m", "--input-size", "12by16"], "12by16"),
    ],
)
def test_bad_input_is_one_line_naming_it_and_exit_2(capsys, args, named):
    from benchmarks.coreml_int8 import main

    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("coreml_int8:") and "\n" not in err and named in err
