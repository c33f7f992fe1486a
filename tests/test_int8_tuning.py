"""Quantization-aware fine-tuning (toolkit/training/int8_tuning.py): the head is rounded as the
runtimes round it, the tuned copy is a plain model again, and tuning lowers the rounding's error."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.pcarn import build_model
from toolkit.int8_rounding import int8_rounded_straight_through
from toolkit.training.int8_tuning import FakeQuantConv, FakeQuantHead, TuningPlan, tune_head


def _model(seed: int = 0, scales: tuple[int, ...] = (2, 3, 4)):
    torch.manual_seed(seed)
    return build_model("pcarn-test", scales=scales).eval()


def test_weights_round_to_255_levels_per_output_channel_within_half_a_step_gradients_straight_through():
    weight = torch.randn(6, 4, 3, 3) * torch.linspace(0.01, 2.0, 6).view(6, 1, 1, 1)
    weight.requires_grad_(True)
    rounded = int8_rounded_straight_through(weight)
    rounded.sum().backward()
    assert torch.equal(weight.grad, torch.ones_like(weight))
    weight, rounded = weight.detach(), rounded.detach()
    step = weight.abs().amax(dim=(1, 2, 3)) / 127.0
    for channel in range(6):
        levels = torch.unique(torch.round(rounded[channel] / step[channel]))
        assert levels.abs().max() <= 127
        assert (rounded[channel] - weight[channel]).abs().max() <= step[channel] / 2 + 1e-7


def test_min_max_ranges_keep_every_batch_as_calibration_does_and_moving_ones_follow():
    from toolkit.training.int8_tuning import _Range

    wide, narrow = torch.linspace(-2.0, 3.0, 50), torch.linspace(-0.5, 0.5, 50)
    kept, moving = _Range(moving=False).train(), _Range(moving=True).train()
    for r in (kept, moving):
        r(wide)
        for _ in range(600):  # 1% a step
            r(narrow)
    assert (float(kept.low), float(kept.high)) == (-2.0, 3.0)
    assert float(moving.high) < 0.6 and float(moving.low) > -0.6
    step = 5.0 / 255
    assert torch.all((kept.eval()(wide) - wide).abs() <= step / 2 + 1e-6)


def test_every_conv_is_rounded_and_a_tied_unit_keeps_one_range_per_call():
    model = _model(scales=(2,))
    head = FakeQuantHead(model, 2)
    plain = sum(1 for m in _model(scales=(2,)).modules() if isinstance(m, nn.Conv2d))
    assert len(head.convs) == plain
    assert not any(
        type(m) is nn.Conv2d and not isinstance(p, FakeQuantConv)
        for p in model.modules()
        for m in p.children()
    )
    tied = [c for c in head.convs if len(c.inputs) > 1]
    assert tied and all(len(c.inputs) == model.config.units for c in tied)
    head.train()(torch.rand(1, 3, 12, 12))
    assert all(bool(r.seen) for c in head.convs for r in c.inputs)
    # each call saw its own input: the ranges of one tied conv differ
    assert len({float(r.high) for r in tied[0].inputs}) > 1


def test_tuning_lowers_the_rounding_error_and_returns_a_plain_model():
    from tests.conftest import deterministic_weights

    teacher = deterministic_weights(build_model("pcarn-test", scales=(2,)))
    torch.manual_seed(0)
    smooth = F.interpolate(torch.rand(1, 3, 4, 4), size=(16, 16), mode="bilinear")
    patches = smooth.repeat(4, 1, 1, 1) + 0.05 * torch.rand(4, 3, 16, 16)

    def rounding_error(model) -> float:
        head = FakeQuantHead(copy.deepcopy(model), 2)
        head.train()(patches)  # the ranges
        with torch.no_grad():
            return float(((head.eval()(patches) - teacher(patches, 2)) ** 2).mean())

    plan = TuningPlan(steps=60, batch=4, patch=16, lr=1e-4)
    tuned, losses = tune_head(teacher, 2, patches, plan)
    assert not any(isinstance(m, FakeQuantConv) for m in tuned.modules())
    assert tuned.state_dict().keys() == teacher.state_dict().keys()
    assert rounding_error(tuned) < 0.95 * rounding_error(teacher)  # measured: 0.86x
    assert len(losses) == 60


def _tiny_checkpoint(tmp_path, seed: int = 0):
    from tests.conftest import deterministic_weights
    from toolkit.weights.checkpoint import save_checkpoint

    model = deterministic_weights(build_model("pcarn-test", scales=(2,)))
    if seed:
        with torch.no_grad():
            model.entry.bias += 0.01 * seed
    path = tmp_path / f"tiny-{seed}.safetensors"
    save_checkpoint(model, path)
    return model, path


def test_int8_tune_writes_a_head_that_names_its_teacher_and_export_refuses_other_weights(tmp_path):
    from pcarn.cli.main import main
    from tests.conftest import photo_folders
    from toolkit.errors import PcarnError
    from toolkit.training.int8_tuning import TUNING_KEY, load_tuned, weights_sha256
    from toolkit.weights.checkpoint import read_metadata

    model, path = _tiny_checkpoint(tmp_path)
    photos, _ = photo_folders(tmp_path)
    args = ["int8-tune", "--model", str(path), "--scales", "2", "--calib", str(photos), "--steps", "3"]
    assert main([*args, "--patch", "16", "--patches", "8", "--batch", "2", "--out", str(tmp_path / "t")]) == 0
    head = tmp_path / "t" / "pcarn-test-int8-x2.safetensors"
    record = read_metadata(head)["source"][TUNING_KEY]
    assert record["teacher_sha256"] == weights_sha256(model) and record["scale"] == 2
    assert set(load_tuned([head], model)) == {2}
    other, _ = _tiny_checkpoint(tmp_path, seed=1)
    with pytest.raises(PcarnError, match="tuned from other weights"):
        load_tuned([head], other)
    with pytest.raises(PcarnError, match="not a tuned int8 head"):
        load_tuned([path], model)
    assert main([*args, "--lr", "-1", "--out", str(tmp_path / "u")]) == 1
    assert not (tmp_path / "u").exists()  # refused before any work


def test_an_int8_file_made_from_tuned_weights_is_judged_against_the_untuned_model(tmp_path):
    from tests.conftest import deterministic_weights, tiny_int8_export

    model = deterministic_weights(build_model("pcarn-test"))
    tuned = copy.deepcopy(model)
    with torch.no_grad():  # weights far from the model's: the cost must show it
        tuned.exit.bias += 0.2
    plain = tiny_int8_export(tmp_path, tmp_path / "plain", 100.0)["files"][0]
    made = tiny_int8_export(tmp_path, tmp_path / "tuned", 100.0, tuned={2: tuned})["files"][0]
    assert "int8_weights" in made and "int8_weights" not in plain
    cost = lambda entry: entry["parity"]["quantization"]["cost_db"]  # noqa: E731
    fp32 = lambda entry: entry["parity"]["quantization"]["pytorch_fp32"]["psnr_y"]  # noqa: E731
    assert fp32(made) == pytest.approx(fp32(plain))  # the reference is the untuned model
    assert cost(made) > cost(plain) + 1.0  # a 0.2 shift of every output pixel costs many dB
