"""The before/after lowering comparison times both graphs and shows what the exporter removed."""

from __future__ import annotations

import pytest

import benchmarks.lowering as lowering


def test_lowering_comparison_on_a_tiny_head(monkeypatch):
    monkeypatch.setattr(lowering, "default_input_size", lambda scale: (12, 20))
    row = lowering.compare("pcarn-test", 4, threads=1, repeats=2, warmup=1)
    before, after = row["before"]["ops"], row["after"]["ops"]
    assert after["DEPTH_TO_SPACE"] == 2 and "DEPTH_TO_SPACE" not in before
    # grouped test head: one rank-4 channel transpose per stage is all the layout work left
    assert after.get("TRANSPOSE", 0) == 2 < before["TRANSPOSE"]
    assert before["CONV_2D"] == after["CONV_2D"]
    assert row["after"]["median_s"] > 0
    assert row["speedup"] == pytest.approx(row["before"]["median_s"] / row["after"]["median_s"])


def test_onnx_shuffle_lowerings_are_exact_and_timed():
    from benchmarks.onnx_shuffle import compare

    rows = compare(channels=4, block=2, size=(6, 10), threads=1, repeats=2, warmup=1)
    assert [r["lowering"] for r in rows] == [
        "DepthToSpace (CRD)",
        "Reshape-Transpose-Reshape",
        "ConvTranspose one-hot (grouped)",
    ]
    assert all(r["equal_to_depth_to_space"] and r["median_s"] > 0 for r in rows)
