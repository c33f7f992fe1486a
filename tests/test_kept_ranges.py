"""Calibrated ranges kept across runs (``export/kept_ranges.py``): a second export with the same
graph and crops restores the first one's ranges instead of calibrating, and writes the same file;
other crops calibrate again."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from export.choice_store import ChoiceStore
from export.common import DeployHead
from models import build_model
from tests.conftest import deterministic_weights, tiny_int8_export

RECALLED, MEASURED = "recalled from an earlier run", "measured in this run"


def _refuse(*args, **kwargs):
    pytest.fail("calibrated again")


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_a_second_export_restores_the_ranges_and_writes_the_same_file(tmp_path, monkeypatch, fmt):
    pytest.importorskip("onnxruntime" if fmt == "onnx" else "litert_torch")
    kept = tmp_path / "choices.json"
    first = tiny_int8_export(tmp_path, tmp_path / "one", 0.05, fmt, choices=ChoiceStore([], kept))["files"][0]
    assert first["ranges"] == MEASURED
    assert json.loads(kept.read_text())["ranges"]
    if fmt == "onnx":
        from onnxruntime.quantization.calibrate import MinMaxCalibrater

        monkeypatch.setattr(MinMaxCalibrater, "collect_data", _refuse)
    else:
        import export.pt2e_annotate as annotate

        real = annotate.calibrate  # the ranges are looked up as before; measuring them fails
        monkeypatch.setattr(annotate, "calibrate", lambda p, i, r: real(p, i, lambda k, _: r(k, _refuse)))
    second = tiny_int8_export(tmp_path, tmp_path / "two", 0.05, fmt, choices=ChoiceStore([kept]))["files"][0]
    assert second["ranges"] == RECALLED
    assert second["parity"]["quantization"]["cost_db"] == first["parity"]["quantization"]["cost_db"]
    assert (tmp_path / "two" / second["path"]).read_bytes() == (tmp_path / "one" / first["path"]).read_bytes()


def _crops(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((12, 16, 3), dtype=np.float32) for _ in range(2)]


def test_coreml_ranges_restored_give_the_same_graph(tmp_path):
    pytest.importorskip("coremltools")
    from export.coreml.int8 import quantized_head

    head = DeployHead(deterministic_weights(build_model("pcarn-test")), 2).eval()
    store = ChoiceStore([], tmp_path / "choices.json")
    first = quantized_head(head, (12, 16), _crops(0), ranges=lambda k, m: store.recall_ranges(tmp_path, k, m))
    later = ChoiceStore([tmp_path / "choices.json"])
    second = quantized_head(
        head, (12, 16), _crops(0), ranges=lambda k, _: later.recall_ranges(tmp_path, k, _refuse)
    )
    x = torch.from_numpy(np.ascontiguousarray(_crops(5)[0].transpose(2, 0, 1)))[None]
    with torch.no_grad():
        assert torch.equal(first(x), second(x))
    assert later.ranges_recalled == {tmp_path}


def test_other_crops_calibrate_again(tmp_path):
    pytest.importorskip("onnxruntime")
    from export.onnx.exporter import simplified_fp32
    from export.onnx.int8 import quantize_onnx

    head = DeployHead(deterministic_weights(build_model("pcarn-test")), 2).eval()
    fp32 = simplified_fp32(head, (12, 16), False)
    store = ChoiceStore([], tmp_path / "choices.json")
    measured = []

    def ranges(key, measure):
        return store.recall_ranges(tmp_path, key, lambda: measured.append(key) or measure())

    plain = quantize_onnx(fp32, _crops(0))
    assert quantize_onnx(fp32, _crops(0), ranges=ranges) == plain
    assert quantize_onnx(fp32, _crops(0), ranges=ranges) == plain  # recalled: the same bytes
    quantize_onnx(fp32, _crops(1), ranges=ranges)
    assert len(measured) == 2 and len(json.loads((tmp_path / "choices.json").read_text())["ranges"]) == 2
