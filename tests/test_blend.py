"""pcarn blend: network interpolation between two checkpoints of one network."""

from __future__ import annotations

import pytest
import torch
from conftest import run_cli

from models import build_model
from toolkit.weights.checkpoint import read_metadata, save_checkpoint
from toolkit.weights.loading import load_any


@pytest.fixture
def parents(tmp_path):
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"parent{seed}.safetensors")
        save_checkpoint(build_model("pcarn-test"), paths[-1])
    return paths


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_the_ends_reproduce_the_parents_exactly(parents, tmp_path, alpha):
    out = tmp_path / "blend.safetensors"
    result = run_cli("blend", str(parents[0]), str(parents[1]), "--alpha", str(alpha), "--out", str(out))
    assert result.returncode == 0, result.stderr
    blended = load_any(out).model.state_dict()
    parent = load_any(parents[int(alpha)]).model.state_dict()
    assert all(torch.equal(blended[k], parent[k]) for k in parent)


def test_the_middle_is_the_mean_and_records_both_parents(parents, tmp_path):
    out = tmp_path / "half.safetensors"
    assert (
        run_cli("blend", str(parents[0]), str(parents[1]), "--alpha", "0.5", "--out", str(out)).returncode
        == 0
    )
    a, b = (load_any(p).model.state_dict() for p in parents)
    blended = load_any(out).model.state_dict()
    key = "entry.weight"
    assert torch.allclose(blended[key], (a[key] + b[key]) / 2, atol=1e-7)
    source = read_metadata(out)["source"]
    assert source["kind"] == "blend" and source["alpha"] == 0.5
    assert source["a"]["path"] == str(parents[0]) and source["b"]["path"] == str(parents[1])


def test_other_variants_and_configs_are_refused_in_one_line(parents, tmp_path):
    other = tmp_path / "other.safetensors"
    save_checkpoint(build_model("pcarn-test", scales=(2,)), other)
    bigger = tmp_path / "pcarn.safetensors"
    save_checkpoint(build_model("pcarn"), bigger)
    for args, message in (
        ([str(parents[0]), str(other)], "configs differ in scales"),
        ([str(parents[0]), str(bigger)], "cannot blend a pcarn-test model"),
        ([str(parents[0]), str(parents[1]), "--alpha", "1.5"], "--alpha must be between 0"),
    ):
        alpha = [] if "--alpha" in args else ["--alpha", "0.5"]
        result = run_cli("blend", *args, *alpha, "--out", str(tmp_path / "x.safetensors"))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and message in lines[0], result.stderr
        assert not (tmp_path / "x.safetensors").exists()
