"""Exact transformations behind the exporters: mean-shift folding and the CRD->DCR reorder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import deterministic_weights

from export.common import DeployHead, default_input_size
from export.options import parse_size
from export.tflite.d2s import NativeShuffleHead, _reference_depth_to_space, crd_to_dcr_permutation
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


@pytest.mark.parametrize("variant", ["pcarn", "pcarn-test"])  # dense and grouped stage convs
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_native_shuffle_head_equals_the_pixel_shuffle_exactly(variant, scale):
    torch.manual_seed(scale)
    head = DeployHead(build_model(variant).eval(), scale).eval()
    native = NativeShuffleHead(head).eval()
    assert [c.groups for c in native.stages] == [c.groups for c in head.net.heads[f"x{scale}"].stages]
    x = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        assert (native(x) - head(x)).abs().max() < 1e-6  # the same sums, in another channel order


def test_default_input_sizes_cover_720p():
    assert default_input_size(2) == (360, 640)
    assert default_input_size(4) == (180, 320)
    assert default_input_size(3) == (240, 427)  # 1280/3 is not whole: 427*3 = 1281 >= 1280


def test_parse_size():
    assert parse_size("180x320") == (180, 320)
    for bad in ("180", "0x10", "axb", "-3x4"):
        with pytest.raises(ValueError):
            parse_size(bad)
