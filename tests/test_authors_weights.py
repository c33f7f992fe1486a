"""The authors' released checkpoints load into our models and reproduce their code's outputs."""

from __future__ import annotations

import pytest
import torch
from conftest import OFFICIAL, lr_tensor, requires_shared

from models import count_parameters
from toolkit.errors import PcarnError
from toolkit.weights.authors import (
    convert_state_dict,
    detect_variant,
    load_authors_checkpoint,
    read_authors_state,
)

pytestmark = requires_shared


@pytest.mark.parametrize("name", ["PCARN-M-L1", "PCARN-M"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_golden_outputs_of_the_authors_code(name, scale, golden):
    model, source = load_authors_checkpoint(OFFICIAL / f"{name}.pth")
    assert source["variant"] == "pcarn-m"
    with torch.no_grad():
        out = model(lr_tensor(golden["lr"]), scale).numpy()
    expected = golden[f"{name}_x{scale}"]
    assert out.shape == expected.shape
    assert abs(out - expected).max() <= 1e-5


def test_carn_m_loads_with_its_own_wiring():
    model, source = load_authors_checkpoint(OFFICIAL / "carn_m.pth")
    assert source["variant"] == "carn-m"
    assert model.config.fusion_relu and not model.config.global_residual
    assert count_parameters(model) == 414_787
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        y = model(x, 4)
    # a trained SR model stays close to the input's colours
    assert (y.mean() - x.mean()).abs() < 0.05


@pytest.mark.parametrize(
    ("file", "variant"), [("PCARN-M-L1.pth", "pcarn-m"), ("PCARN-M.pth", "pcarn-m"), ("carn_m.pth", "carn-m")]
)
def test_variant_is_detected_from_keys(file, variant):
    assert detect_variant(read_authors_state(OFFICIAL / file)) == variant


def test_tied_copies_that_differ_are_rejected():
    state = read_authors_state(OFFICIAL / "PCARN-M-L1.pth")
    state["b2.b3.conv1.weight"] = state["b2.b3.conv1.weight"].clone() + 1e-3
    with pytest.raises(PcarnError, match=r"b2\.b3\.conv1\.weight should be tied"):
        convert_state_dict(state)


def test_foreign_state_dict_is_a_clear_error(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(10)}, path)
    with pytest.raises(PcarnError, match="not a PCARN/CARN checkpoint"):
        load_authors_checkpoint(path)


def test_wrong_shapes_name_the_offending_key(tmp_path):
    state = read_authors_state(OFFICIAL / "PCARN-M-L1.pth")
    state["exit.weight"] = torch.zeros(3, 32, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(PcarnError, match=r"exit\.weight has shape \(3, 32, 3, 3\)"):
        load_authors_checkpoint(path)
