"""Before/after comparisons of graph changes: both files timed, outputs equal, what changed shown."""

from __future__ import annotations

import pytest

import benchmarks.rewrites as rewrites
from toolkit.errors import PcarnError


def test_tflite_lowering_comparison_on_a_tiny_head(monkeypatch):
    monkeypatch.setattr(rewrites, "default_input_size", lambda scale: (12, 20))
    row = rewrites.compare("pcarn-test", 4, "tflite", threads=1, repeats=2, warmup=1, rewrite="lowering")
    before, after = row["before_ops"], row["after_ops"]
    assert after["DEPTH_TO_SPACE"] == 2 and "DEPTH_TO_SPACE" not in before
    # grouped test head: one rank-4 channel transpose per stage is all the layout work left
    assert after.get("TRANSPOSE", 0) == 2 < before["TRANSPOSE"]
    assert before["CONV_2D"] == after["CONV_2D"]
    assert row["max_abs_difference"] < 1e-5 and row["after_median_s"] > 0
    assert row["speedup"] == pytest.approx(row["before_median_s"] / row["after_median_s"])


def test_a_runtime_that_cannot_take_a_side_is_refused_before_any_work():
    with pytest.raises(PcarnError, match="tflite does not take --shuffle"):
        rewrites.refuse_unsupported("conv-transpose", ["onnx", "tflite"])
    with pytest.raises(PcarnError, match="coreml does not take --exit-at-lr"):
        rewrites.refuse_unsupported("exit-at-lr", ["coreml"])
    with pytest.raises(PcarnError, match="executorch has no plain conversion"):
        rewrites.refuse_unsupported("lowering", ["executorch"])


def test_onnx_shuffle_lowerings_are_exact_and_timed():
    from benchmarks.onnx_shuffle import compare

    rows = compare(channels=4, block=2, size=(6, 10), threads=1, repeats=2, warmup=1)
    assert [r["lowering"] for r in rows] == [
        "DepthToSpace (CRD)",
        "Reshape-Transpose-Reshape",
        "ConvTranspose one-hot (grouped)",
    ]
    assert all(r["equal_to_depth_to_space"] and r["median_s"] > 0 for r in rows)
