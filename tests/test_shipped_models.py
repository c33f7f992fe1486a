"""The checkpoints shipped in models/: they load, their metadata matches the architecture built from
the presets, their cards state their numbers, and nothing in them names a folder of the machine that
made them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from models import PRESETS, build_model, count_parameters
from toolkit.cards.portable import portable_command, portable_training
from toolkit.provenance import REPO_ROOT
from toolkit.weights.checkpoint import load_checkpoint
from toolkit.weights.registry import SHIPPED_NAMES

MODELS = REPO_ROOT / "models"
SHIPPED = sorted(p.stem for p in MODELS.glob("*.safetensors"))
MACHINE_PATH = re.compile(r"(?<![\w.])/(work|tmp|root|home|Users|mnt|var)/")


def test_the_stage1_and_gan_models_are_shipped():
    assert {"pcarn-m", "pcarn"} <= set(SHIPPED) <= set(SHIPPED_NAMES)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_matches_its_preset_and_card(name):
    model, metadata = load_checkpoint(MODELS / f"{name}.safetensors")
    variant = metadata["variant"]
    assert name.removesuffix("-gan") == variant
    reference = build_model(variant)
    assert model.config == PRESETS[variant] == reference.config
    assert metadata["params"] == count_parameters(model) == count_parameters(reference)
    assert set(model.state_dict()) == set(reference.state_dict())
    assert metadata["io"]["scales"] == [2, 3, 4]
    training = metadata["training"]
    assert training["stage"] == ("gan" if name.endswith("-gan") else "l1")
    card = (MODELS / f"{name}.md").read_text()
    assert f"{metadata['params']:,} parameters" in card
    for head, values in metadata["metrics"]["values"].items():
        assert f"{values['psnr_y']:.2f} / {values['ssim_y']:.4f}" in card, head
        assert f"{values['lpips']:.3f}" in card, head
    if training["stage"] == "gan":
        assert training["options"]["perceptual"] in ("vgg16", "vgg19")
        assert (MODELS / f"{name}-perception-distortion.png").is_file()
        for picture in (f"{name}-crops-x2.png", f"{name}-crops-x4.png"):  # the card shows both
            assert (MODELS / picture).is_file() and f"({picture})" in card


@pytest.mark.parametrize("name", SHIPPED)
def test_nothing_shipped_names_a_machine_folder(name):
    _, metadata = load_checkpoint(MODELS / f"{name}.safetensors")
    assert not MACHINE_PATH.search(str(metadata["training"])), metadata["training"]
    assert not MACHINE_PATH.search((MODELS / f"{name}.md").read_text())


def test_portable_paths_replace_machine_folders():
    command = (
        "pcarn train --variant pcarn-m --init /somewhere/models/pcarn-m.safetensors --data /srv/photos "
        f"--val skimage --out /scratch/runs/pcarn-m-gan --vgg-weights {REPO_ROOT / 'w' / 'vgg.pth'}"
    )
    assert portable_command(command) == (
        "pcarn train --variant pcarn-m --init pcarn-m.safetensors --data PHOTOS/ --val skimage "
        "--out runs/pcarn-m-gan --vgg-weights w/vgg.pth"
    )
    record = portable_training(
        {
            "command": command,
            "data": "/srv/photos",
            "init_path": "/x/y.safetensors",
            "options": {
                "data": "/srv/photos",
                "out": "/scratch/r1",
                "init": "models/a.safetensors",
                "command": command,
            },
            "init_training": {"command": "pcarn train --data /srv/photos --out /scratch/r0", "data": "/srv"},
        }
    )
    assert not any(folder in str(record) for folder in ("/srv", "/scratch", "/x/", "/somewhere"))
    assert record["options"] == {
        "data": "PHOTOS/",
        "out": "runs/r1",
        "init": "models/a.safetensors",
        "command": portable_command(command),
    }
    assert record["init_training"]["command"] == "pcarn train --data PHOTOS/ --out runs/r0"
    assert Path(record["init_path"]).name == "y.safetensors"
