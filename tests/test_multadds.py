"""MultAdds at 720p, counted layer by layer (the paper's tables 4 and 5 report x4)."""

import pytest

from models import build_model
from models.multadds import count_conv_multadds, multadds_720p, multadds_for_lr_size

EXPECTED_G = {
    "pcarn": {"x2": 222.8, "x3": 118.8, "x4": 90.9},
    "pcarn-m": {"x2": 91.2, "x3": 46.1, "x4": 32.5},
}


@pytest.mark.parametrize("variant", sorted(EXPECTED_G))
def test_multadds_at_720p_match_the_paper(variant):
    counted = multadds_720p(build_model(variant))
    for head, giga in EXPECTED_G[variant].items():
        assert abs(counted[head] / 1e9 - giga) <= 0.1, (head, counted[head])


def test_tied_unit_is_counted_every_time_it_runs():
    import torch

    model = build_model("pcarn-m")
    x = torch.empty(1, 3, 10, 10, device="meta")
    records = count_conv_multadds(model, lambda m: m(x, 2))
    unit_calls = [r for r in records if r.name == "blocks.0.units.0.conv1"]
    assert len(unit_calls) == 3
    # grouped 3x3 conv, 64 -> 64 in groups of 4: 64 * 16 * 9 weights at 100 LR pixels
    assert unit_calls[0].multadds == 64 * 16 * 9 * 100


def test_x2_and_x4_use_whole_lr_sizes_exactly():
    model = build_model("pcarn-m")
    assert multadds_720p(model)["x4"] == multadds_for_lr_size(model, 4, (180, 320))
    assert multadds_720p(model)["x2"] == multadds_for_lr_size(model, 2, (360, 640))


def test_counting_leaves_the_model_untouched():
    model = build_model("pcarn-test")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    multadds_720p(model)
    assert all(t.device.type == "cpu" for t in model.state_dict().values())
    assert all((before[k] == v).all() for k, v in model.state_dict().items())
