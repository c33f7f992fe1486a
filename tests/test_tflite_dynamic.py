"""``pcarn export --formats tflite --dynamic``: one file the app resizes at run time, exact at any size."""

from __future__ import annotations

import pytest

from export.common import DeployHead
from export.formats import get_format
from export.pipeline import export_all
from export.tflite.file import TFLiteFile
from export.tflite.resizable import resizable
from models import build_model
from tests.conftest import assert_runner_matches_head, deterministic_weights
from toolkit.errors import PcarnError

pytest.importorskip("litert_torch")


@pytest.fixture(scope="module")
def dynamic_tflite(tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite-dynamic")
    model = deterministic_weights(build_model("pcarn-test"))  # grouped heads: the slice reorder
    manifest = export_all(
        model,
        out,
        formats=["tflite"],
        scales=[4],
        precisions=["fp32", "fp16"],
        input_size=(24, 32),
        provenance={"variant": "pcarn-test", "path": "memory"},
        options={"dynamic": True},
        progress=False,
    )
    return model, out, manifest


def test_dynamic_tflite_passes_parity_at_three_sizes(dynamic_tflite):
    _, _, manifest = dynamic_tflite
    assert manifest["all_passed"], manifest
    entry = manifest["files"][0]
    assert "at 24x32, 13x15, 17x19" in entry["parity"]["rule"]
    assert len(entry["parity"]["images"]) >= 3
    resizable_check = entry["checks"]["resizable"]
    assert resizable_check["passed"] and "[1, -1, -1, 3]" in resizable_check["detail"]
    assert "STRIDED_SLICE" in entry["checks"]["xnnpack"]["detail"]  # declared, not hidden


def test_dynamic_tflite_runs_any_size_including_larger(dynamic_tflite):
    model, out, _ = dynamic_tflite
    fmt, path = get_format("tflite"), out / "pcarn-test_x4_fp32.tflite"
    assert fmt.input_shape(path) == [1, 0, 0, 3]
    run, head = fmt.runner(path, 1), DeployHead(model, 4).eval()
    # larger than the export size too, and back
    assert_runner_matches_head(run, head, [(24, 32), (40, 56), (9, 31), (24, 32)])
    assert fmt.random_input(path, (12, 16)).shape == (1, 12, 16, 3)  # what pcarn bench times per size


def test_a_fixed_tflite_file_keeps_its_size(tmp_path):
    model = deterministic_weights(build_model("pcarn-test"))
    export_all(
        model,
        tmp_path,
        formats=["tflite"],
        scales=[2],
        precisions=["fp32"],
        input_size=(24, 32),
        provenance={"variant": "pcarn-test"},
        progress=False,
        options={"exit_at_lr": False},  # the paper's exit: a grouped channel reorder before the shuffle
    )
    path = tmp_path / "pcarn-test_x2_fp32.tflite"
    assert get_format("tflite").input_shape(path) == [1, 24, 32, 3]
    with pytest.raises(PcarnError, match="RESHAPE"):  # its grouped reorder holds the export size
        resizable(TFLiteFile.read(path).data)
