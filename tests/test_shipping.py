"""Shipping a run: checkpoint under models/ with evaluated metrics and a model card."""

from __future__ import annotations

import pytest
from conftest import requires_shared
from PIL import Image
from test_data import write_photos

from toolkit.cards.shipping import ship
from toolkit.data import HELD_OUT
from toolkit.errors import PcarnError
from toolkit.training.trainer import TrainOptions, train
from toolkit.weights.checkpoint import read_metadata


@requires_shared
def test_ship_writes_checkpoint_and_card(tmp_path, monkeypatch):
    monkeypatch.setattr("toolkit.cards.shipping.SHIPPED_DIR", tmp_path / "models")
    (tmp_path / "models").mkdir()
    write_photos(tmp_path / "train", 2, size=(72, 60))
    write_photos(tmp_path / "val", 1, size=(64, 48), seed=4)
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


def test_ship_a_gan_run_writes_lpips_card_plot_and_crops(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr("toolkit.cards.shipping.SHIPPED_DIR", models)
    monkeypatch.setattr("toolkit.cards.gan.SHIPPED_DIR", models)
    # Compare with our shipped stage-1 pcarn-m only: its architecture differs from the tiny run's,
    # which a card must handle (it compares metrics, not weights).
    monkeypatch.setattr("toolkit.cards.gan.COMPARISONS", (("pcarn-m", "ours pcarn-m (stage 1)", True),))
    write_photos(tmp_path / "train", 2, size=(72, 60))
    write_photos(tmp_path / "val", 1, size=(96, 96), seed=4)
    (tmp_path / "val" / "photo0.png").rename(tmp_path / "val" / "astronaut.png")
    base = {"data": str(tmp_path / "train"), "variant": "pcarn-test", "batch": 2, "workers": 0}
    base |= {"progress": False, "threads": 1, "scales": (2,)}
    stage1 = train(TrainOptions(**base, out=str(tmp_path / "l1"), steps=1, patch=8))
    gan = TrainOptions(
        **base,
        out=str(tmp_path / "gan"),
        stage="gan",
        init=str(stage1),
        steps=2,
        patch=16,
        perceptual="vgg16",
        val=str(tmp_path / "val"),
        val_every=1,
        command=f"pcarn train --stage gan --data {tmp_path / 'train'} --out {tmp_path / 'gan'}",
    )
    train(gan)
    held_out = tmp_path / "photos"
    held_out.mkdir()
    for held in HELD_OUT:  # stand-ins under the held-out names
        Image.open(tmp_path / "val" / "astronaut.png").save(held_out / held)
    result = ship(tmp_path / "gan", "pcarn-test-gan", val=str(tmp_path / "val"), held_out=held_out)
    metadata = read_metadata(result["checkpoint"])
    assert metadata["training"]["command"] == "pcarn train --stage gan --data PHOTOS/ --out runs/gan"
    assert [r["step"] for r in metadata["training"]["validation_history"]] == [1, 2]
    x2 = metadata["metrics"]["values"]["x2"]
    assert 0 < x2["lpips"] < 1 and set(x2["compared"]) == {"pcarn-m"}
    card = (models / "pcarn-test-gan.md").read_text()
    assert "VGG16 conv5_3" in card and "substitute for the paper's VGG19" in card
    assert f"{x2['psnr_y']:.2f} / {x2['ssim_y']:.4f} / {x2['lpips']:.3f}" in card
    assert "ours pcarn-m (stage 1)" in card and "| bicubic |" in card and str(tmp_path) not in card
    assert "On the held-out photos" in card and "LadyBird" in card and "**Caveat:**" in card
    for picture in ("pcarn-test-gan-perception-distortion.png", "pcarn-test-gan-crops-x2.png"):
        assert (models / picture).stat().st_size > 5_000 and f"]({picture})" in card
