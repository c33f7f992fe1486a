"""Exact transformations behind the exporters: mean-shift folding and the CRD->DCR reorder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import deterministic_weights

from export.common import DeployHead, default_input_size, parse_size
from export.tflite.d2s import NativeShuffleStage, _reference_depth_to_space, crd_to_dcr_permutation, register
from models import build_model


@pytest.mark.parametrize("variant", ["pcarn-test", "pcarn", "carn-m"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_deploy_head_with_folded_exit_mean_equals_the_model(variant, scale):
    model = deterministic_weights(build_model(variant))
    head = DeployHead(model, scale)
    assert set(head.net.heads) == {f"x{scale}"}  # only the weights this head needs
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.allclose(head(x), model(x, scale), atol=1e-6)


def test_entry_bias_fold_would_not_be_exact_at_borders():
    """Why the input mean stays a Sub: the entry conv zero-pads x - mean, not x."""
    model = deterministic_weights(build_model("pcarn-test"))
    w, b, mean = model.entry.weight, model.entry.bias, model.rgb_mean
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        true = F.conv2d(x - mean, w, b, padding=1)
        folded = F.conv2d(x, w, b - (w * mean.view(1, 3, 1, 1)).sum((1, 2, 3)), padding=1)
    assert torch.allclose(true[..., 1:-1, 1:-1], folded[..., 1:-1, 1:-1], atol=1e-6)
    assert (true - folded).abs().max() > 1e-2


def test_reference_depth_to_space_is_tflite_dcr():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(1, 2, 3, 8)  # C=2, r=2
    y = _reference_depth_to_space(x, 2)
    assert y.shape == (1, 4, 6, 2)
    # out[h*r+i, w*r+j, c] = in[h, w, (i*r+j)*C + c]
    assert y[0, 1, 0, 1] == x[0, 0, 0, (1 * 2 + 0) * 2 + 1]
    assert y[0, 3, 5, 0] == x[0, 1, 2, (1 * 2 + 1) * 2 + 0]


def test_crd_to_dcr_permutation():
    order = crd_to_dcr_permutation(channels=2, block=2)
    assert order.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("block", [2, 3])
def test_native_stage_equals_pixel_shuffle_exactly(groups, block):
    register()
    torch.manual_seed(groups * 10 + block)
    conv = torch.nn.Conv2d(16, 16 * block * block, 3, padding=1, groups=groups)
    stage = NativeShuffleStage(conv, block)
    assert stage.conv.groups == groups  # never densified
    x = torch.rand(2, 16, 5, 7)
    with torch.no_grad():
        expected = F.pixel_shuffle(F.relu(conv(x)), block)
        got = stage(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert torch.equal(got, expected)


def test_default_input_sizes_cover_720p():
    assert default_input_size(2) == (360, 640)
    assert default_input_size(4) == (180, 320)
    assert default_input_size(3) == (240, 427)  # 1280/3 is not whole: 427*3 = 1281 >= 1280


def test_parse_size():
    assert parse_size("180x320") == (180, 320)
    for bad in ("180", "0x10", "axb", "-3x4"):
        with pytest.raises(ValueError):
            parse_size(bad)
