"""Per-op profiles: every op of the exported graph is accounted for, with the right multiply-adds."""

from __future__ import annotations

import pytest

from benchmarks.op_profile import format_profile, profile
from benchmarks.prepare import model_file
from export.common import DeployHead
from export.exit_at_lr import extra_multadds
from export.formats import FORMATS
from export.tflite.file import TFLiteFile
from models.multadds import multadds_for_lr_size
from models.pcarn import build_model as build
from pcarn.cli.main import main

SIZE = (12, 20)


def _graph_multadds(model) -> int:
    """The paper's count plus what the exit conv folded before the last shuffle adds (the default)."""
    return multadds_for_lr_size(model, 4, SIZE) + extra_multadds(DeployHead(model, 4), SIZE)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    model = build("pcarn-test").eval()
    folder = tmp_path_factory.mktemp("prof")
    onnx, tflite = (model_file(model, FORMATS[f], 4, SIZE, folder) for f in ("onnx", "tflite"))
    return model, onnx, tflite


def test_tflite_profile_covers_every_op_and_every_multiply_add(tiny_files):
    model, _, tflite = tiny_files
    result = profile(tflite, threads=1, repeats=2, warmup=1)
    assert sum(r["count"] for r in result["rows"]) == len(TFLiteFile.read(tflite).ops())
    assert sum(r["macs"] for r in result["rows"]) == _graph_multadds(model)
    grouped = [r for r in result["rows"] if "grouped g=2" in r["op"]]
    assert grouped and all(r["seconds"] > 0 for r in result["rows"])
    assert result["whole_graph_s"] > 0 and "CONV_2D 3x3 grouped g=2 8->8" in format_profile(result)


def test_onnx_profile_reads_the_runtime_trace(tiny_files):
    model, onnx, _ = tiny_files
    result = profile(onnx, threads=1, repeats=2, warmup=1)
    convs = [r for r in result["rows"] if r["op"].startswith("Conv")]
    assert sum(r["macs"] for r in convs) == _graph_multadds(model)
    assert any("grouped g=2" in r["op"] for r in convs)
    assert any(r["op"].startswith("DepthToSpace") for r in result["rows"])


def test_profile_refuses_other_files_and_names_them(tmp_path, capsys):
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert main(["profile", str(image)]) == 1
    assert "x.png is not an exported file: expected one of .onnx" in capsys.readouterr().err
    assert main(["profile", str(tmp_path / "none.tflite")]) == 1
    assert "file not found" in capsys.readouterr().err
    assert main(["profile", "--runtimes", "coreml", "--variants", "pcarn-test"]) == 1
    assert "unknown runtime for per-op profiles 'coreml'; choose from onnx, tflite" in capsys.readouterr().err
