"""Released weights by name: found locally, or downloaded, verified and cached."""

from __future__ import annotations

import shutil

import pytest
from conftest import OFFICIAL, requires_shared

from toolkit.errors import PcarnError
from toolkit.weights.loading import load_any
from toolkit.weights.registry import cache_dir, fetch_official


@pytest.fixture
def no_local_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("PCARN_OFFICIAL_DIR", str(tmp_path / "empty"))


@requires_shared
def test_download_is_verified_and_cached(no_local_copy):
    url = (OFFICIAL / "carn_m.pth").as_uri()
    path = fetch_official("carn_m", url=url, quiet=True)
    assert path == cache_dir() / "carn_m.pth" and path.is_file()
    # second call finds the cache without any URL
    assert fetch_official("carn_m", url="http://127.0.0.1:9/unreachable", quiet=True) == path


@requires_shared
def test_hash_mismatch_is_refused_and_not_kept(no_local_copy, tmp_path):
    wrong = tmp_path / "wrong.pth"
    shutil.copy(OFFICIAL / "PCARN-M.pth", wrong)
    with pytest.raises(PcarnError, match="sha256"):
        fetch_official("PCARN-M-L1", url=wrong.as_uri(), quiet=True)
    assert not (cache_dir() / "PCARN-M-L1.pth").exists()
    assert list(cache_dir().iterdir()) == []


def test_offline_is_a_clear_error(no_local_copy):
    with pytest.raises(PcarnError, match="cannot download PCARN-M-L1.*offline, put the file at"):
        fetch_official("PCARN-M-L1", url="http://127.0.0.1:9/PCARN-M-L1.pth", quiet=True)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(PcarnError, match="unknown released model.*PCARN-M-L1"):
        fetch_official("ESRGAN")


@requires_shared
def test_names_resolve_to_the_shared_copy():
    loaded = load_any("pcarn-m-l1")
    assert loaded.variant == "pcarn-m" and loaded.path.endswith("PCARN-M-L1.pth")
    assert loaded.sha256 == "50a018566eb28fbf966e0e4d43b513fa90b7242932afd9dddbc0be69d9df6ec9"
    loaded = load_any("pcarn-m", quiet=True)
    assert loaded.variant == "pcarn-m" and loaded.scales == (2, 3, 4) and loaded.note is None
    assert loaded.provenance == {"path": loaded.path, "variant": "pcarn-m", "sha256": loaded.sha256}
    assert 20 < loaded.receptive_radius["x4"] <= 24  # the default tile overlap covers it


@requires_shared
def test_photo_realistic_names_fall_back_to_the_authors_gan_weights(monkeypatch, tmp_path):
    monkeypatch.setattr("toolkit.weights.registry.SHIPPED_DIR", tmp_path)  # nothing of ours shipped
    loaded = load_any("pcarn-m-gan", quiet=True)
    assert loaded.path.endswith("PCARN-M.pth") and loaded.variant == "pcarn-m"
    assert loaded.sha256 == "a7e328d6c87991ec81540d6b0b15723714443d0c276bec0e864aae441ef16a24"
    assert loaded.note == (
        "no trained pcarn-m-gan ships yet; used the authors' PCARN-M (GAN) weights (authors-pcarn-m-gan)"
    )


@requires_shared
def test_the_authors_names_in_their_case_are_not_our_shipped_models():
    theirs, ours = load_any("PCARN-M", quiet=True), load_any("pcarn-m", quiet=True)
    assert theirs.path.endswith("PCARN-M.pth") and ours.path.endswith("pcarn-m.safetensors")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pcarn-m", "pcarn-m"),  # ours
        ("PCARN-M", "authors-pcarn-m-gan"),  # the authors' release name, as written
        ("authors-pcarn-m-gan", "authors-pcarn-m-gan"),
        ("pcarn-m-l1", "authors-pcarn-m-l1"),  # an alias in other letter case
        ("CARN_M", "authors-carn-m"),
        ("Pcarn-M-Gan", "pcarn-m-gan"),
        ("esrgan", None),
    ],
)
def test_one_registry_resolves_every_name(name, expected):
    from toolkit.weights.registry import resolve

    entry = resolve(name)
    assert (entry and entry.name) == expected


def test_pcarn_models_lists_every_name_with_the_shipped_metrics(tmp_path):
    import json

    from pcarn.cli.main import main
    from toolkit.weights.registry import MODELS

    assert main(["models", "--json", str(tmp_path / "models.json")]) == 0
    rows = {r["name"]: r for r in json.loads((tmp_path / "models.json").read_text())["models"]}
    assert set(rows) == set(MODELS)
    shipped = rows["pcarn-m"]
    assert shipped["source"] == "shipped" and shipped["weights"] == "pcarn-m.safetensors"
    assert 25 < shipped["metrics"]["x4"]["psnr_y"] < 40 and 0 < shipped["metrics"]["x4"]["lpips"] < 1
    assert (
        rows["authors-pcarn-m-gan"]["aliases"] == ["PCARN-M"]
        and rows["authors-pcarn-m-gan"]["metrics"] is None
    )


def test_a_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    (tmp_path / "pcarn-m").mkdir()  # e.g. run from a folder holding a directory named like a model
    monkeypatch.chdir(tmp_path)
    loaded = load_any("pcarn-m", quiet=True)
    assert loaded.variant == "pcarn-m" and loaded.path.endswith("pcarn-m.safetensors")
    with pytest.raises(PcarnError, match="is a folder"):
        load_any(str(tmp_path / "pcarn-m") + "/")
