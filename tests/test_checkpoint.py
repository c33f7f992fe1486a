"""Our .safetensors checkpoint: round trip, metadata document, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import OFFICIAL, requires_shared
from safetensors import safe_open
from safetensors.torch import save_file

from models import build_model
from toolkit.errors import PcarnError
from toolkit.weights.authors import load_authors_checkpoint
from toolkit.weights.checkpoint import (
    FORMAT_NAME,
    METADATA_KEY,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)


def test_round_trip_reproduces_outputs_exactly(tiny_model, tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(tiny_model, path, training={"steps": 0}, metrics={"x2": {"psnr_y": 1.0}})
    loaded, metadata = load_checkpoint(path)
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        for scale in (2, 3, 4):
            assert torch.equal(loaded(x, scale), tiny_model(x, scale))
    assert loaded.config == tiny_model.config
    assert not loaded.training


def test_metadata_document_has_every_section(tiny_model, tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(tiny_model, path, training={"steps": 5, "data": "unit test"})
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    doc = json.loads(header[METADATA_KEY])
    assert doc["format"] == FORMAT_NAME and doc["schema_version"] == 1
    assert doc["variant"] == "pcarn-test"
    assert doc["io"] == {
        **doc["io"],
        "color": "RGB",
        "range": [0.0, 1.0],
        "layout": "NCHW",
        "scales": [2, 3, 4],
    }
    assert doc["params"] == sum(p.numel() for p in tiny_model.parameters())
    assert doc["training"] == {"steps": 5, "data": "unit test"}
    assert "PSNR on Y" in doc["metrics"]["convention"]["psnr"]
    assert set(doc["provenance"]) >= {"toolkit_version", "git_commit", "torch_version", "created"}


def test_tied_weights_are_stored_once(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(build_model("pcarn-m"), path)
    with safe_open(str(path), framework="pt") as f:
        stored = sum(f.get_tensor(k).numel() for k in f.keys())  # noqa: SIM118
    assert stored == 414_787


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(PcarnError, match="not a readable .safetensors checkpoint"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(PcarnError, match="not a pcarn-toolkit checkpoint"):
        read_metadata(foreign)


def test_metadata_that_disagrees_with_the_weights_is_caught(tiny_model, tmp_path):
    path = tmp_path / "t.safetensors"
    save_checkpoint(tiny_model, path)
    doc = read_metadata(path)
    doc["config"]["channels"] = 16
    tensors = {k: v.contiguous() for k, v in tiny_model.state_dict().items()}
    lying = tmp_path / "lying.safetensors"
    save_file(tensors, str(lying), metadata={METADATA_KEY: json.dumps(doc)})
    with pytest.raises(PcarnError, match="weights do not match"):
        load_checkpoint(lying)


def test_failed_save_keeps_the_previous_file(tiny_model, tmp_path):
    path = tmp_path / "keep.safetensors"
    save_checkpoint(tiny_model, path)
    before = path.read_bytes()
    with pytest.raises(PcarnError):
        save_checkpoint(tiny_model, tmp_path / "missing-folder" / "x.safetensors")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.safetensors"]


@requires_shared
def test_imported_authors_weights_round_trip(tmp_path, golden):
    from conftest import lr_tensor

    from toolkit.weights.authors import load_authors_checkpoint

    model, source = load_authors_checkpoint(OFFICIAL / "PCARN-M-L1.pth")
    path = tmp_path / "pcarn-m-l1.safetensors"
    save_checkpoint(model, path, source=source)
    loaded, metadata = load_checkpoint(path)
    assert metadata["source"]["sha256"].startswith("50a01856")
    with torch.no_grad():
        out = loaded(lr_tensor(golden["lr"]), 3).numpy()
    assert abs(out - golden["PCARN-M-L1_x3"]).max() <= 1e-5


def test_pickled_objects_in_an_authors_file_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"entry.weight": torch.zeros(1), "hook": print}, path)
    with pytest.raises(PcarnError, match="refusing to unpickle"):
        load_authors_checkpoint(path)
