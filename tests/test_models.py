"""Architecture facts the paper and the authors' weights pin down."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import deterministic_weights

from models import PCARN, PRESETS, PCARNConfig, build_model, count_parameters, head_parameters, variant_of

GOLDEN_TINY = Path(__file__).parent / "golden" / "pcarn-test.npz"


@pytest.mark.parametrize(
    ("variant", "params"),
    [("pcarn", 1_591_939), ("pcarn-m", 414_787), ("carn", 1_591_939), ("carn-m", 414_787)],
)
def test_parameter_count_is_exact(variant, params):
    assert count_parameters(build_model(variant)) == params


def test_pcarn_m_counts_weights_without_biases_like_the_paper():
    # The paper's "412K" for CARN-M counts conv weights only; ours counts biases too.
    model = build_model("carn-m")
    weights = sum(p.numel() for name, p in model.named_parameters() if name.endswith("weight"))
    assert round(weights / 1000) == 412


def test_head_parameters_share_the_body():
    heads = head_parameters(build_model("pcarn"))
    assert heads == {"x2": 964_163, "x3": 1_148_803, "x4": 1_111_875}


@pytest.mark.parametrize("variant", ["pcarn", "pcarn-m", "carn-m", "pcarn-test"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shape_on_odd_sizes(variant, scale):
    model = build_model(variant).eval()
    x = torch.rand(2, 3, 7, 11)
    with torch.no_grad():
        y = model(x, scale)
    assert y.shape == (2, 3, 7 * scale, 11 * scale)


def test_tied_units_are_one_module_used_at_every_position():
    model = build_model("pcarn-m")
    for block in model.blocks:
        assert len(block.units) == 1 and len(block.fusions) == 3
    calls = []
    handle = model.blocks[0].units[0].register_forward_hook(lambda *a: calls.append(1))
    model(torch.rand(1, 3, 8, 8), 2)
    handle.remove()
    assert len(calls) == 3


def test_pcarn_units_are_independent():
    model = build_model("pcarn")
    assert all(len(block.units) == 3 for block in model.blocks)
    assert not torch.equal(model.blocks[0].units[0].conv1.weight, model.blocks[0].units[1].conv1.weight)


def test_grouped_convs_in_pcarn_m_units_and_heads():
    model = build_model("pcarn-m")
    assert model.blocks[0].units[0].conv1.groups == 4
    assert model.blocks[0].units[0].pw.groups == 1
    assert all(conv.groups == 4 for head in model.heads.values() for conv in head.stages)
    assert model.heads["x3"].stages[0].out_channels == 576


def test_initialisation_follows_section_4_2():
    torch.manual_seed(0)
    model = build_model("pcarn")
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.weight[0].numel()
            bound = math.sqrt(1.0 / fan_in)
            assert torch.count_nonzero(module.bias) == 0
            assert module.weight.abs().max() <= bound
            # uniform on [-b, b] has std b/sqrt(3); 1x1 and 3x3 fan-ins both hold thousands of samples
            assert module.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_mean_shift_is_frozen_and_not_a_parameter():
    model = build_model("pcarn-m")
    assert "rgb_mean" not in dict(model.named_parameters())
    assert "rgb_mean" not in model.state_dict()
    assert model.rgb_mean.flatten().tolist() == pytest.approx([0.4488, 0.4371, 0.4040])


def test_global_residual_and_fusion_relu_switch_the_wiring():
    base = deterministic_weights(build_model("pcarn-m"))
    carn = PCARN(PRESETS["carn-m"])
    carn.load_state_dict(base.state_dict())
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        assert not torch.allclose(base(x, 2), carn.eval()(x, 2))


def test_unsupported_scale_is_a_clear_error():
    model = build_model("pcarn-test", scales=(2, 4))
    with pytest.raises(ValueError, match=r"scale 3 is not supported.*\[2, 4\]"):
        model(torch.rand(1, 3, 4, 4), 3)
    assert set(model.heads) == {"x2", "x4"}


def test_config_rejects_unknown_and_invalid_options():
    with pytest.raises(ValueError, match="unknown PCARNConfig option"):
        PCARNConfig.from_dict({"channels": 64, "colour": "red"})
    with pytest.raises(ValueError, match="divisible"):
        PCARNConfig(channels=10, unit="eresidual", groups=4)
    with pytest.raises(ValueError, match="scales"):
        PCARNConfig(scales=(8,))
    with pytest.raises(ValueError, match="unknown variant"):
        build_model("pcarn-xl")


def test_config_round_trips_through_a_dict():
    config = PRESETS["pcarn-m"]
    assert PCARNConfig.from_dict(config.to_dict()) == config
    assert variant_of(config.replace(scales=(4,))) == "pcarn-m"
    assert variant_of(config.replace(channels=32)) is None


def test_tiny_model_golden_outputs(tiny_model):
    """Guards the wiring without ../shared: RNG-free weights, fixed input, stored outputs."""
    x = torch.linspace(0, 1, 3 * 11 * 13).reshape(1, 3, 11, 13)
    with torch.no_grad():
        outputs = {f"x{s}": tiny_model(x, s).numpy() for s in (2, 3, 4)}
    if os.environ.get("PCARN_REGEN_GOLDEN"):
        np.savez_compressed(GOLDEN_TINY, **outputs)
    assert GOLDEN_TINY.is_file(), f"missing {GOLDEN_TINY}; create it with PCARN_REGEN_GOLDEN=1"
    with np.load(GOLDEN_TINY) as stored:
        for key, value in outputs.items():
            error = np.abs(stored[key] - value).max()
            assert error <= 1e-5, f"{key} drifted by {error}; if intended, rerun with PCARN_REGEN_GOLDEN=1"
