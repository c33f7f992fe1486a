"""int8 choices kept across runs (``export/choice_store.py``): a second export with the same inputs
reuses the first one's choice and writes the same file; other inputs search again; the shipped
choices belong to the shipped weights."""

from __future__ import annotations

import json

import pytest

import export.onnx.exporter as onnx_exporter
from export.choice_store import SHIPPED, ChoiceStore, key_digest
from export.common import DeployHead
from export.mixed import KEPT_WIDER
from pcarn.cli.flags import choice_store
from tests.conftest import tiny_int8_export
from toolkit.errors import PcarnError
from toolkit.weights.checkpoint import weights_sha256
from toolkit.weights.loading import load_model

pytest.importorskip("onnxruntime")


def _export(tmp_path, out, store, budget=0.05) -> dict:
    return tiny_int8_export(tmp_path, out, budget, choices=store)


def test_a_second_export_recalls_the_choice_and_writes_the_same_file(tmp_path, monkeypatch):
    kept = tmp_path / "choices.json"
    first = _export(tmp_path, tmp_path / "one", ChoiceStore([], kept))["files"][0]
    assert first["choice"] == "made in this run" and kept.is_file()

    def search(*args, **kwargs):
        raise AssertionError("the choice was searched again")

    monkeypatch.setattr(onnx_exporter, "_wide_choice", search)
    second = _export(tmp_path, tmp_path / "two", ChoiceStore([kept]))["files"][0]
    assert second["choice"] == "recalled from an earlier run"
    assert second[KEPT_WIDER] == first[KEPT_WIDER]
    assert second["parity"]["quantization"]["cost_db"] == first["parity"]["quantization"]["cost_db"]
    assert (tmp_path / "two" / second["path"]).read_bytes() == (tmp_path / "one" / first["path"]).read_bytes()


def test_another_budget_searches_again(tmp_path, monkeypatch):
    kept = tmp_path / "choices.json"
    _export(tmp_path, tmp_path / "one", ChoiceStore([], kept))
    searched = []
    search = onnx_exporter._wide_choice
    monkeypatch.setattr(onnx_exporter, "_wide_choice", lambda *a: searched.append(a) or search(*a))
    entry = _export(tmp_path, tmp_path / "two", ChoiceStore([], kept), budget=0.5)["files"][0]
    assert len(searched) == 1 and entry["choice"] == "made in this run"
    assert len(json.loads(kept.read_text())["entries"]) == 2  # both kept, neither overwritten


def test_a_file_that_is_not_a_choices_file_is_refused_before_any_work(tmp_path):
    bad = tmp_path / "choices.json"
    bad.write_text('{"entries": {"x": {"choice": {"wide": []}}}}')
    with pytest.raises(PcarnError, match="not an int8 choices file"):
        choice_store(str(bad))
    with pytest.raises(PcarnError, match="does not exist"):
        choice_store(str(tmp_path / "missing" / "choices.json"))
    assert choice_store("none") is None


def test_the_shipped_choices_are_filed_by_their_key_and_belong_to_shipped_weights():
    entries = json.loads(SHIPPED.read_text())["entries"]
    assert entries, "models/int8-choices.json is empty"
    shipped = {
        weights_sha256(DeployHead(load_model(name), scale))
        for name in ("pcarn-m", "pcarn-m-gan")
        for scale in (2, 3, 4)
    }
    for digest, entry in entries.items():
        assert key_digest(entry["key"]) == digest
        # retraining a shipped model without remaking its choices fails here
        assert entry["key"]["weights_sha256"] in shipped


def test_the_shipped_ranges_are_filed_by_their_key():
    ranges = json.loads(SHIPPED.read_text())["ranges"]
    # deploy's defaults: pcarn-m and pcarn-m-gan, three heads, ONNX, TFLite and Core ML int8
    assert len(ranges) >= 18, "models/int8-choices.json lost calibrated ranges"
    for digest, entry in ranges.items():
        assert key_digest(entry["key"]) == digest
        assert entry["ranges"], "an empty calibration"
