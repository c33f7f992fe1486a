"""The one-hot ConvTranspose pixel shuffle: bit-exact, checked in the ONNX file, a wrong one caught."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import OFFICIAL, deterministic_weights, requires_shared

from export.checks import expectation
from export.common import DeployHead
from export.exit_at_lr import ExitAtLR
from export.onnx.checks import check_onnx
from export.pipeline import export_all
from export.shuffle_forms import ConvTransposeShuffleHead, is_one_hot_shuffle, one_hot_weight
from models import build_model


def _equal_heads(model, scale: int) -> None:
    head = DeployHead(model, scale).eval()
    x = torch.rand(1, 3, 14, 18)
    with torch.no_grad():
        assert torch.equal(ConvTransposeShuffleHead(head)(x), head(x))
        assert torch.equal(ConvTransposeShuffleHead(head, exit_at_lr=True)(x), ExitAtLR(head)(x))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bit_exact_on_the_tiny_model(scale):
    _equal_heads(deterministic_weights(build_model("pcarn-test")), scale)


@requires_shared
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bit_exact_on_the_authors_pcarn_m(scale):
    from toolkit.weights.authors import load_authors_checkpoint

    model, _ = load_authors_checkpoint(OFFICIAL / "PCARN-M-L1.pth")
    _equal_heads(model, scale)


def test_one_hot_pattern_is_recognised_and_others_are_not():
    weight = one_hot_weight(4, 2).numpy()
    assert is_one_hot_shuffle(weight, 4, [2, 2], [2, 2])
    assert is_one_hot_shuffle(np.where(weight != 0, 127, 0).astype(np.int8), 4, [2, 2], [2, 2])
    swapped = weight.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # two sub-pixels exchanged: a different shuffle
    assert not is_one_hot_shuffle(swapped, 4, [2, 2], [2, 2])
    assert not is_one_hot_shuffle(weight * np.arange(1, 17).reshape(16, 1, 1, 1), 4, [2, 2], [2, 2])
    assert not is_one_hot_shuffle(weight, 4, [2, 2], [1, 1])


@pytest.fixture(scope="module")
def conv_transpose_files(tmp_path_factory):
    model = deterministic_weights(build_model("pcarn-test", scales=(4,)))
    out = tmp_path_factory.mktemp("ct")
    manifest = export_all(
        model,
        out,
        formats=["onnx"],
        scales=[4],
        precisions=["fp32", "int8"],
        input_size=(24, 32),  # int8 parity runs photos in windows with 11 px of context
        provenance={"variant": "pcarn-test", "path": "memory"},
        progress=False,
        options={"exit_at_lr": True, "shuffle": "conv-transpose"},
    )
    return model, out, manifest


def test_conv_transpose_files_pass_checks_and_parity(conv_transpose_files):
    import onnx

    _, out, manifest = conv_transpose_files
    assert manifest["all_passed"], [(e["path"], e["checks"], e["parity"]["rule"]) for e in manifest["files"]]
    graph = onnx.load(str(out / "pcarn-test_x4_fp32.onnx"))
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("ConvTranspose") == 2 and "DepthToSpace" not in ops
    assert {p.key: p.value for p in graph.metadata_props}["shuffle"] == "conv-transpose"
    fp32 = next(e for e in manifest["files"] if e["path"] == "pcarn-test_x4_fp32.onnx")
    assert fp32["parity"]["max_abs"] <= 1e-5
    assert "0 DepthToSpace" in fp32["checks"]["pixel_shuffle"]["detail"]


def test_a_convtranspose_that_is_not_a_shuffle_fails(conv_transpose_files, tmp_path):
    import onnx
    from onnx import numpy_helper

    model, out, _ = conv_transpose_files
    graph = onnx.load(str(out / "pcarn-test_x4_fp32.onnx"))
    target = next(n for n in graph.graph.node if n.op_type == "ConvTranspose").input[1]
    init = next(i for i in graph.graph.initializer if i.name == target)
    weight = numpy_helper.to_array(init).copy()
    weight[[0, 1]] = weight[[1, 0]]  # sub-pixels exchanged: outputs land in the wrong place
    init.CopyFrom(numpy_helper.from_array(weight, target))
    onnx.save(graph, str(tmp_path / "wrong.onnx"))
    exp = expectation(DeployHead(model, 4))
    report = check_onnx(tmp_path / "wrong.onnx", exp, "fp32")
    assert report.checks["pixel_shuffle"]["passed"] is False
    assert "1 other ConvTranspose" in report.checks["pixel_shuffle"]["detail"]


@pytest.mark.parametrize("block", [2, 3])
def test_rank4_pixel_shuffle_is_pytorchs_bit_for_bit(block):
    from export.shuffle_forms import rank4_pixel_shuffle

    x = torch.rand(2, 5 * block * block, 7, 9, generator=torch.Generator().manual_seed(block))
    assert torch.equal(rank4_pixel_shuffle(x, block), torch.nn.functional.pixel_shuffle(x, block))
