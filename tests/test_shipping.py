"""Shipping a run: checkpoint under models/ with evaluated metrics and a model card."""

from __future__ import annotations

import pytest
from conftest import requires_shared
from test_data import write_photos

from toolkit.checkpoint import read_metadata
from toolkit.errors import PcarnError
from toolkit.shipping import ship
from toolkit.training import TrainOptions, train


@requires_shared
def test_ship_writes_checkpoint_and_card(tmp_path, monkeypatch):
    monkeypatch.setattr("toolkit.shipping.SHIPPED_DIR", tmp_path / "models")
    (tmp_path / "models").mkdir()
    write_photos(tmp_path / "train", 2, size=(72, 60))
    write_photos(tmp_path / "val", 1, size=(48, 36), seed=4)
    run = tmp_path / "run"
    opts = TrainOptions(
        data=str(tmp_path / "train"),
        out=str(run),
        variant="pcarn-test",
        steps=2,
        batch=2,
        patch=8,
        workers=0,
        progress=False,
        val=str(tmp_path / "val"),
        val_every=2,
    )
    train(opts)
    result = ship(run, "pcarn-m", val=str(tmp_path / "val"))
    metadata = read_metadata(result["checkpoint"])
    assert metadata["training"]["steps"] == 2
    assert set(metadata["metrics"]["values"]) == {"x2", "x3", "x4"}
    assert metadata["metrics"]["values"]["x2"]["reference"] == "PCARN-M-L1"
    card = (tmp_path / "models" / "pcarn-m.md").read_text()
    assert "| x4 |" in card and "Quality bar" in card and "not met" in card
    # a later run continues from the shipped weights: the card states the whole lineage
    shipped = tmp_path / "models" / "pcarn-m.safetensors"
    later = TrainOptions(**{**vars(opts), "out": str(tmp_path / "run2"), "steps": 3, "init": str(shipped)})
    train(later)
    ship(tmp_path / "run2", "pcarn-m", val=str(tmp_path / "val"))
    card = (tmp_path / "models" / "pcarn-m.md").read_text()
    assert "Initialised from weights trained by" in card and "In total: 5 optimizer steps" in card


def test_ship_without_validation_is_a_clear_error(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(PcarnError, match="no best.safetensors"):
        ship(tmp_path / "run", "pcarn-m")
