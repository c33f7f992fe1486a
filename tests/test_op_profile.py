"""Per-op profiles: every op of the exported graph is accounted for, with the right multiply-adds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.multadds import multadds_for_lr_size
from benchmarks.op_profile import format_profile, profile
from benchmarks.runtimes import onnx_file, tflite_file
from export.checks import tflite_ops
from models.pcarn import build_model as build

SIZE = (12, 20)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    model = build("pcarn-test").eval()
    folder = tmp_path_factory.mktemp("prof")
    return model, onnx_file(model, 4, SIZE, folder), tflite_file(model, 4, SIZE, folder)


def test_tflite_profile_covers_every_op_and_every_multiply_add(tiny_files):
    model, _, tflite = tiny_files
    result = profile(tflite, threads=1, repeats=2, warmup=1)
    assert sum(r["count"] for r in result["rows"]) == len(tflite_ops(tflite))
    assert sum(r["macs"] for r in result["rows"]) == multadds_for_lr_size(model, 4, SIZE)
    grouped = [r for r in result["rows"] if "grouped g=2" in r["op"]]
    assert grouped and all(r["seconds"] > 0 for r in result["rows"])
    assert result["whole_graph_s"] > 0 and "CONV_2D 3x3 grouped g=2 8->8" in format_profile(result)


def test_onnx_profile_reads_the_runtime_trace(tiny_files):
    model, onnx, _ = tiny_files
    result = profile(onnx, threads=1, repeats=2, warmup=1)
    convs = [r for r in result["rows"] if r["op"].startswith("Conv")]
    assert sum(r["macs"] for r in convs) == multadds_for_lr_size(model, 4, SIZE)
    assert any("grouped g=2" in r["op"] for r in convs)
    assert any(r["op"].startswith("DepthToSpace") for r in result["rows"])


def test_profile_refuses_other_files_and_names_them(tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "profile", str(image)], capture_output=True, text=True
    )
    assert done.returncode == 1 and ".onnx and .tflite" in done.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "profile", str(Path(tmp_path) / "none.tflite")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "file not found" in missing.stderr
