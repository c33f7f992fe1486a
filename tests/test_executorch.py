"""ExecuTorch ``.pte`` files: checks read back from the file, parity, metadata, and failures caught."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import OFFICIAL, assert_runner_matches_head, deterministic_weights, requires_shared

from export.checks import expectation
from export.common import DeployHead
from export.executorch import exporter as executorch_format
from export.executorch.checks import check_executorch
from export.executorch.file import PTEFile
from export.file_model import FileModel
from export.formats import get_format
from export.pipeline import export_all, export_file
from models import build_model
from toolkit.errors import PcarnError

pytest.importorskip("executorch", reason="the executorch extra is not installed")


@pytest.fixture(scope="module")
def tiny_pte(tmp_path_factory):
    model = deterministic_weights(build_model("pcarn-test"))
    out = tmp_path_factory.mktemp("pte")
    manifest = export_all(
        model,
        out,
        formats=["executorch"],
        scales=[2, 3, 4],
        precisions=["fp32"],
        input_size=(12, 16),
        provenance={"variant": "pcarn-test", "path": "memory"},
        progress=False,
    )
    return model, out, manifest


def test_every_head_is_delegated_checked_and_matches(tiny_pte):
    _, out, manifest = tiny_pte
    assert manifest["all_passed"], [(e["path"], e.get("reason"), e.get("checks")) for e in manifest["files"]]
    assert [e["path"] for e in manifest["files"]] == [f"pcarn-test_x{s}_fp32.pte" for s in (2, 3, 4)]
    x4 = manifest["files"][2]
    assert x4["input_shape"] == [1, 3, 12, 16] and x4["output_shape"] == [1, 3, 48, 64]
    assert "portable kernels: none" in x4["checks"]["xnnpack"]["detail"]
    assert x4["checks"]["pixel_shuffle"]["detail"].startswith("2 rank-4 pixel shuffles")  # two x2 stages
    assert "max rank 4" in x4["checks"]["pixel_shuffle"]["detail"]  # no rank-6 transpose
    assert x4["parity"]["max_abs"] <= 1e-4


def test_metadata_and_shape_travel_inside_the_file(tiny_pte):
    _, out, _ = tiny_pte
    path = out / "pcarn-test_x3_fp32.pte"
    meta = executorch_format.read_metadata(path)
    assert meta["variant"] == "pcarn-test" and meta["scale"] == "3" and meta["input_layout"] == "NCHW"
    assert executorch_format.input_shape(path) == [1, 3, 12, 16]
    assert set(PTEFile.read(path).method_names()) == {"forward", "metadata"}


def test_a_pte_upscales_photos_in_windows_like_pytorch(tiny_pte, tmp_path):
    model, _, _ = tiny_pte
    fmt = get_format("executorch")
    path = export_file(model, fmt, 2, "fp32", tmp_path, input_size=(30, 32), provenance={"variant": "t"})
    photo = np.random.default_rng(0).random((40, 70, 3), dtype=np.float32)  # 1 x 3 windows
    sr = FileModel.open(path).upscale(photo, 2)
    with torch.no_grad():
        expected = DeployHead(model, 2)(torch.from_numpy(photo.transpose(2, 0, 1))[None])
    assert sr.shape == (80, 140, 3)
    assert np.abs(sr - expected[0].numpy().transpose(1, 2, 0)).max() <= 1e-4


def test_a_program_left_to_portable_kernels_fails(tmp_path):
    """Lowered without the XNNPACK partitioner, every op runs on the portable kernels: caught."""
    from executorch.exir import to_edge

    model = deterministic_weights(build_model("pcarn-test", scales=(2,)))
    head = DeployHead(model, 2).eval()
    program = torch.export.export(head, (torch.rand(1, 3, 12, 16),))
    path = tmp_path / "portable.pte"
    path.write_bytes(to_edge(program).to_executorch().buffer)
    report = check_executorch(path, expectation(head), "fp32")
    assert not report.passed
    assert report.checks["xnnpack"]["passed"] is False
    assert "aten::convolution" in report.checks["xnnpack"]["detail"]


def test_a_missing_shuffle_stage_is_caught(tiny_pte):
    model, out, _ = tiny_pte
    exp = expectation(DeployHead(model, 2))
    exp.upsample_stages = 2  # a file with one stage checked as if it needed two
    report = check_executorch(out / "pcarn-test_x2_fp32.pte", exp, "fp32")
    assert report.checks["pixel_shuffle"]["passed"] is False


def test_exit_at_lr_files_pass(tmp_path):
    model = deterministic_weights(build_model("pcarn-test", scales=(4,)))
    manifest = export_all(
        model,
        tmp_path,
        formats=["executorch"],
        scales=[4],
        precisions=["fp32"],
        input_size=(12, 16),
        provenance={"variant": "pcarn-test", "path": "memory"},
        progress=False,
        options={"exit_at_lr": True},
    )
    (entry,) = manifest["files"]
    assert entry["passed"], (entry["checks"], entry["parity"])
    assert executorch_format.read_metadata(tmp_path / entry["path"])["exit_at_lr"] == "true"


@requires_shared
def test_authors_pcarn_m_x4_pte_reproduces_the_golden_output(tmp_path, golden):
    from toolkit.weights.authors import load_authors_checkpoint

    model, _ = load_authors_checkpoint(OFFICIAL / "PCARN-M-L1.pth")
    manifest = export_all(
        model,
        tmp_path,
        formats=["executorch"],
        scales=[4],
        precisions=["fp32"],
        input_size=(38, 50),
        provenance={"variant": "pcarn-m", "path": "PCARN-M-L1.pth"},
        progress=False,
    )
    assert manifest["all_passed"]
    assert manifest["files"][0]["checks"]["grouped_convs"]["detail"].startswith("20 grouped convs (groups=4)")
    x = golden["lr"].astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    sr = get_format("executorch").runner(tmp_path / "pcarn-m_x4_fp32.pte")(x)
    assert np.abs(sr - golden["PCARN-M-L1_x4"]).max() <= 1e-4


def test_lowered_whole_to_vulkan_and_core_ml(tmp_path, tiny_pte):
    """The head lowered whole to a phone GPU (Vulkan) and to Core ML: every op in the one delegate,
    checked from the file; neither runs here, so the program handed to the partitioner is compared."""
    from export.executorch.lowered import check_lowered
    from export.formats import DEFAULT_FORMATS, find_format

    model = deterministic_weights(build_model("pcarn-test"))
    manifest = export_all(
        model,
        tmp_path,
        formats=["executorch-vulkan", "executorch-coreml"],
        scales=[4],
        input_size=(24, 32),
        provenance={"variant": "pcarn-test", "path": "memory"},
        progress=False,
    )
    assert manifest["all_passed"], manifest
    vulkan, coreml = manifest["files"]
    assert (vulkan["path"], coreml["path"]) == (
        "pcarn-test_x4_fp32.vulkan.pte",
        "pcarn-test_x4_fp16.coreml.pte",
    )
    assert find_format(tmp_path / vulkan["path"]).name == "executorch-vulkan"
    assert find_format(tmp_path / "x.pte").name == "executorch"
    assert vulkan["checks"]["delegated"]["passed"] and not vulkan["parity"]["ran"]
    assert vulkan["accelerators"]["mobile_gpu"]["status"] == "full"
    assert coreml["accelerators"]["neural_engine"]["status"] == "full"
    # the check can fail: an XNNPACK program is not a Vulkan one
    _, out, _ = tiny_pte
    xnnpack = next(out.glob("*.pte"))
    assert check_lowered(xnnpack, "vulkan").checks["delegated"]["passed"] is False
    assert "executorch-vulkan" not in DEFAULT_FORMATS  # written only when asked for


def test_dynamic_pte_takes_any_size_up_to_its_bound(tmp_path):
    model = deterministic_weights(build_model("pcarn-test"))
    manifest = export_all(
        model,
        tmp_path,
        formats=["executorch"],
        scales=[4],
        precisions=["fp32"],
        input_size=(24, 32),
        provenance={"variant": "pcarn-test", "path": "memory"},
        options={"dynamic": True},
        progress=False,
    )
    assert manifest["all_passed"], manifest
    fmt, path = get_format("executorch"), tmp_path / manifest["files"][0]["path"]
    assert fmt.read_metadata(path)["dynamic"] == "2x2 to 24x32"
    run, head = fmt.runner(path, 1), DeployHead(model, 4).eval()
    assert_runner_matches_head(run, head, [(24, 32), (13, 19), (8, 8)])
    assert fmt.random_input(path, (12, 16)).shape == (1, 3, 12, 16)  # what pcarn bench times per size
    with pytest.raises(PcarnError, match="its --dynamic bound"):
        fmt.random_input(path, (48, 32))


class _TiedOnTwoRanges(torch.nn.Module):
    """One conv called on an input and on 8x that input (a tied unit whose calls see different
    ranges, as PCARN-M's recursive blocks do), its biases large enough to matter."""

    def __init__(self) -> None:
        super().__init__()
        self.tied = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.exit = torch.nn.Conv2d(16, 3, 1)
        torch.nn.init.uniform_(self.tied.bias, 0.5, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = torch.cat([torch.relu(self.tied(x)), torch.relu(self.tied(x * 8.0))], 1)
        return self.exit(wide)


def test_int8_tied_conv_calls_on_different_ranges_keep_their_biases(tmp_path):
    """XNNPACK quantizes a shared bias once, with the first call's input scale: the second call's
    bias came out 8x too large (output off by 4 on average). Each integer call owns its bias."""
    from export.executorch.int8 import quantized_program

    torch.manual_seed(0)
    net = _TiedOnTwoRanges().eval()
    crops = [np.random.default_rng(i).random((16, 16, 3), dtype=np.float32) for i in range(4)]
    program, floating = quantized_program(net, (16, 16), crops, False, ())
    assert floating == 0  # every conv integer, the tied one in both calls
    path = tmp_path / "tied.pte"
    path.write_bytes(executorch_format.lowered(program, {}))
    x = torch.from_numpy(crops[1].transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        simulated = program.module()(x).numpy()
    got = executorch_format.runner(path)(x.numpy())
    step = np.abs(simulated).max() / 127  # about one output quantization step
    assert np.abs(got - simulated).max() <= 2 * step
