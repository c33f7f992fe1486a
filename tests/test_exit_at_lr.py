"""The exit-conv rewrite (export/exit_at_lr.py) is exact, and its ONNX files pass every check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import OFFICIAL, deterministic_weights, requires_shared

from export.common import NHWC, DeployHead
from export.exit_at_lr import ExitAtLR, exit_weights
from export.pipeline import export_all
from models import build_model


def _difference(model, scale: int, size=(19, 27)) -> float:
    """Worst difference of either rewrite (NCHW for ONNX, native NHWC for TFLite) from the head."""
    from export.tflite.d2s import NativeShuffleHead

    head = DeployHead(model, scale).eval()
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(scale))
    nhwc = NHWC(NativeShuffleHead(head, exit_at_lr=True)).eval()
    with torch.no_grad():
        reference = head(x)
        onnx_form = (reference - ExitAtLR(head).eval()(x)).abs().max().item()
        tflite_form = (reference - nhwc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)).abs().max().item()
    return max(onnx_form, tflite_form)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_exact_on_the_tiny_model(scale):
    assert _difference(deterministic_weights(build_model("pcarn-test")), scale) < 1e-5


@requires_shared
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_exact_on_the_authors_pcarn_m(scale):
    from toolkit.weights.authors import load_authors_checkpoint

    model, _ = load_authors_checkpoint(OFFICIAL / "PCARN-M-L1.pth")
    assert _difference(model.eval(), scale) < 1e-5


def test_a_wrong_fold_is_caught():
    """The test above can fail: one misplaced tap breaks equality."""
    model = deterministic_weights(build_model("pcarn-test", scales=(2,)))
    head = DeployHead(model, 2).eval()
    rewritten = ExitAtLR(head).eval()
    with torch.no_grad():
        weight = rewritten.exit_r.weight
        weight[:, :, 0, 0], weight[:, :, 2, 2] = weight[:, :, 2, 2].clone(), weight[:, :, 0, 0].clone()
    x = torch.rand(1, 3, 12, 14)
    with torch.no_grad():
        assert (head(x) - rewritten(x)).abs().max().item() > 1e-3
    w, b = exit_weights(head.net.exit, 2)
    assert w.shape == (12, 4 * model.config.channels, 3, 3) and b.shape == (12,)


def test_files_with_the_rewrite_pass_their_checks(tmp_path):
    import onnx

    model = deterministic_weights(build_model("pcarn-test", scales=(2, 4)))
    manifest = export_all(
        model,
        tmp_path,
        formats=["onnx", "tflite"],
        scales=[2, 4],
        precisions=["fp32"],
        input_size=(12, 16),
        provenance={"variant": "pcarn-test", "path": "memory"},
        progress=False,
        options={"exit_at_lr": True},
    )
    assert manifest["all_passed"], [(e["path"], e["checks"], e["parity"]["rule"]) for e in manifest["files"]]
    graph = onnx.load(str(tmp_path / "pcarn-test_x4_fp32.onnx"))
    assert {p.key: p.value for p in graph.metadata_props}["exit_at_lr"] == "true"
    shuffles = [n for n in graph.graph.node if n.op_type == "DepthToSpace"]
    assert len(shuffles) == 2 and shuffles[-1].output[0] == graph.graph.output[0].name  # last op: 3 channels
    assert all(np.isclose(e["parity"]["max_abs"], 0, atol=1e-4) for e in manifest["files"])
    lite = next(e for e in manifest["files"] if e["format"] == "tflite" and e["scale"] == 4)
    assert lite["ops"]["DEPTH_TO_SPACE"] == 2 and lite["checks"]["xnnpack"]["passed"]


@pytest.mark.parametrize(
    ("options", "onnx_folded"), [({}, True), ({"exit_at_lr": True}, True), ({"exit_at_lr": False}, False)]
)
def test_the_exit_is_folded_by_default_where_a_format_takes_it(tmp_path, options, onnx_folded):
    """The fast graph is the default; --paper-exit keeps the paper's graph, and Core ML (which has
    no folded form) gets the paper's graph by default and takes --paper-exit too."""
    import onnx

    from export.formats import get_format
    from export.options import refuse_unaccepted

    model = deterministic_weights(build_model("pcarn-test", scales=(2,)))
    manifest = export_all(
        model,
        tmp_path,
        formats=["onnx"],
        scales=[2],
        precisions=["fp32"],
        input_size=(12, 16),
        provenance={"variant": "pcarn-test", "path": "memory"},
        progress=False,
        options=options,
    )
    (entry,) = manifest["files"]
    assert entry["passed"], (entry["checks"], entry["parity"]["rule"])
    graph = onnx.load(str(tmp_path / entry["path"]))
    assert ({p.key: p.value for p in graph.metadata_props}.get("exit_at_lr") == "true") is onnx_folded
    last = graph.graph.node[-1]
    assert (last.op_type == "DepthToSpace") is onnx_folded  # folded: the last op shuffles 3 channels
    if options.get("exit_at_lr") is not True:
        assert refuse_unaccepted([get_format("coreml")], options) == options


def test_before_after_benchmark_compares_equal_outputs(tmp_path):
    import json

    from benchmarks.rewrites import main

    out = tmp_path / "rewrite.json"
    assert (
        main(
            [
                "--variants",
                "pcarn-test",
                "--runtimes",
                "onnx",
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    (row,) = json.loads(out.read_text())["rows"]
    assert row["max_abs_difference"] < 1e-5 and row["before_median_s"] > 0 and row["after_median_s"] > 0
    # r^2 = 4 times the exit conv's multiply-adds at x4 (3 x 8 x 9 per HR pixel for the tiny model)
    assert row["multadds_after"] - row["multadds_before"] == 3 * 3 * 8 * 9 * 720 * 1280
    with pytest.raises(SystemExit):
        main(["--variants", "nope"])
