"""pcarn export: every format x head x precision, read back, checked, and compared with PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import OFFICIAL, deterministic_weights, requires_shared, run_cli

from export.formats import FORMATS
from export.pipeline import export_all
from export.tflite import exporter as tflite_format
from models import build_model
from toolkit.errors import PcarnError
from toolkit.weights.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory):
    model = deterministic_weights(build_model("pcarn-test"))
    out = tmp_path_factory.mktemp("export")
    manifest = export_all(
        model,
        out,
        formats=["onnx", "coreml", "tflite"],
        scales=[2, 3, 4],
        precisions=["fp32", "fp16"],
        input_size=(12, 16),
        provenance={"variant": "pcarn-test", "path": "memory"},
        progress=False,
    )
    return out, manifest


def test_every_file_is_produced_checked_and_matches(tiny_manifest):
    out, manifest = tiny_manifest
    files = manifest["files"]
    assert len(files) == 18 and manifest["all_passed"], [
        (
            e["path"],
            e.get("reason"),
            {k: v for k, v in e.get("checks", {}).items() if v["passed"] is False},
            e.get("parity", {}).get("rule"),
        )
        for e in files
        if not e["passed"]
    ]
    for e in files:
        assert (out / e["path"]).exists() and e["bytes"] > 0
        assert set(e) >= {
            "format",
            "scale",
            "precision",
            "path",
            "input_layout",
            "input_shape",
            "output_shape",
            "bytes",
            "checks",
            "parity",
            "ops",
        }
    tfl = next(e for e in files if e["format"] == "tflite" and e["scale"] == 4)
    assert tfl["input_layout"] == "NHWC" and tfl["input_shape"] == [1, 12, 16, 3]
    assert tfl["output_shape"] == [1, 48, 64, 3]
    assert tfl["ops"]["DEPTH_TO_SPACE"] == 2
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["all_passed"] and len(saved["files"]) == 18
    assert "| pcarn-test_x3_fp16.tflite |" in (out / "report.md").read_text()

    assert saved["finished"] is True


def test_a_cut_export_keeps_the_results_of_the_files_it_finished(tmp_path, monkeypatch):
    """A run stopped after its first file (out of memory, Ctrl-C) leaves that file's checks and
    parity in manifest.json, marked unfinished and not passed."""
    import export.pipeline as pipeline

    real, calls = pipeline._one, []

    def one_then_stop(*args, **kwargs):
        calls.append(args[2].name)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_one", one_then_stop)
    with pytest.raises(KeyboardInterrupt):
        export_all(
            deterministic_weights(build_model("pcarn-test")),
            tmp_path / "out",
            formats=["onnx"],
            scales=[2],
            precisions=["fp32", "fp16"],
            input_size=(12, 16),
            progress=False,
        )
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved["finished"] is False and saved["all_passed"] is False
    (entry,) = saved["files"]
    assert entry["precision"] == "fp32" and entry["passed"] and entry["parity"]["ran"]


def test_metadata_in_native_slots(tiny_manifest):
    import coremltools as ct
    import onnx

    out, _ = tiny_manifest
    props = {p.key: p.value for p in onnx.load(str(out / "pcarn-test_x2_fp32.onnx")).metadata_props}
    assert props["variant"] == "pcarn-test" and props["scale"] == "2" and props["input_layout"] == "NCHW"
    assert tflite_format.read_metadata(out / "pcarn-test_x3_fp16.tflite")["precision"] == "fp16"
    meta = ct.models.MLModel(
        str(out / "pcarn-test_x4_fp32.mlpackage"), skip_model_load=True
    ).user_defined_metadata
    assert meta["scale"] == "4" and meta["toolkit_version"]
    # traced small, converted at the file's size: the program's shapes are the file's
    spec = ct.models.MLModel(str(out / "pcarn-test_x4_fp32.mlpackage"), skip_model_load=True).get_spec()
    assert list(spec.description.input[0].type.multiArrayType.shape) == [1, 3, 12, 16]
    assert list(spec.description.output[0].type.multiArrayType.shape) == [1, 3, 48, 64]


def test_fp16_files_store_half_weights(tiny_manifest):
    import onnx

    out, manifest = tiny_manifest
    inits = onnx.load(str(out / "pcarn-test_x4_fp16.onnx")).graph.initializer
    assert {i.data_type for i in inits if i.data_type in (1, 10)} == {onnx.TensorProto.FLOAT16}
    for e in manifest["files"]:
        if e["precision"] == "fp16":  # unique constant bytes within 1.05x of the half-precision parameters
            assert e["checks"]["weight_sharing"]["passed"], e["checks"]["weight_sharing"]


@requires_shared
def test_authors_pcarn_m_x4_in_all_formats(tmp_path, golden):
    from toolkit.weights.authors import load_authors_checkpoint

    model, source = load_authors_checkpoint(OFFICIAL / "PCARN-M-L1.pth")
    manifest = export_all(
        model,
        tmp_path,
        formats=["onnx", "coreml", "tflite"],
        scales=[4],
        precisions=["fp32"],
        input_size=(38, 50),
        provenance={"variant": "pcarn-m", "path": "PCARN-M-L1.pth"},
        progress=False,
    )
    assert manifest["all_passed"]
    # the exported files reproduce the authors' golden outputs, not just our PyTorch
    x = golden["lr"].astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    for name, fmt in (("pcarn-m_x4_fp32.onnx", "onnx"), ("pcarn-m_x4_fp32.tflite", "tflite")):
        assert np.abs(FORMATS[fmt].runner(tmp_path / name)(x) - golden["PCARN-M-L1_x4"]).max() <= 1e-4
    convs = {e["format"]: e["checks"]["grouped_convs"]["detail"] for e in manifest["files"]}
    assert all(d.startswith("20 grouped convs (groups=4)") for d in convs.values())


def test_dense_pcarn_tflite_has_no_transposes(tmp_path):
    torch.manual_seed(0)
    model = build_model("pcarn", scales=(4,)).eval()
    manifest = export_all(
        model,
        tmp_path,
        formats=["tflite"],
        scales=[4],
        precisions=["fp32"],
        input_size=(10, 12),
        provenance={"variant": "pcarn"},
        progress=False,
    )
    entry = manifest["files"][0]
    assert entry["passed"], entry
    assert (
        entry["ops"]["DEPTH_TO_SPACE"] == 2
        and "TRANSPOSE" not in entry["ops"]
        and "RESHAPE" not in entry["ops"]
    )


def test_missing_exporter_is_reported_and_the_others_complete(tmp_path, monkeypatch):
    import export.optional as optional

    real = optional.importlib.import_module

    def fake(name, *args):
        if name.startswith("coremltools"):
            raise ImportError("No module named 'coremltools'")
        return real(name, *args)

    monkeypatch.setattr(optional.importlib, "import_module", fake)
    model = deterministic_weights(build_model("pcarn-test"))
    manifest = export_all(
        model,
        tmp_path,
        formats=["coreml", "onnx"],
        scales=[2],
        precisions=["fp32"],
        input_size=(8, 8),
        provenance={"variant": "pcarn-test"},
        progress=False,
    )
    coreml, onnx_entry = manifest["files"]
    assert coreml["status"] == "unavailable" and "pcarn-toolkit[coreml]" in coreml["reason"]
    assert onnx_entry["passed"] and not manifest["all_passed"]


def test_dynamic_onnx_runs_at_several_sizes(tmp_path):
    model = deterministic_weights(build_model("pcarn-test"))
    export_all(
        model,
        tmp_path,
        formats=["onnx"],
        scales=[3],
        precisions=["fp32"],
        input_size=(8, 8),
        provenance={"variant": "pcarn-test"},
        options={"dynamic": True},
        progress=False,
    )
    for h, w in ((8, 8), (13, 21), (30, 17)):
        x = np.random.default_rng(h).random((1, 3, h, w), dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x), 3).numpy()
        assert (
            np.abs(FORMATS["onnx"].runner(tmp_path / "pcarn-test_x3_fp32.onnx")(x) - expected).max() <= 1e-4
        )


def test_bad_arguments_are_clear_errors(tmp_path):
    model = build_model("pcarn-test", scales=(2,))
    with pytest.raises(PcarnError, match="unknown format 'gguf'"):
        export_all(model, tmp_path, formats=["gguf"], scales=[2], precisions=["fp32"])
    with pytest.raises(PcarnError, match="scale 4 is not in this checkpoint"):
        export_all(model, tmp_path, formats=["onnx"], scales=[4], precisions=["fp32"])
    with pytest.raises(PcarnError, match="unknown precision 'int4'"):
        export_all(model, tmp_path, formats=["onnx"], scales=[2], precisions=["int4"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scales", "2", "--formats", "onnx,gguf"], "unknown format 'gguf'"),
        (
            ["--scales", "2", "--model", "x2only.safetensors", "--input-size", "0x4"],
            "input size must be positive",
        ),
        (["--scales", "3", "--model", "x2only.safetensors"], "scale 3 is not in this checkpoint"),
        (["--scales", "2", "--out", "missing/deeper/out"], "output folder's parent does not exist"),
        (["--scales", "2", "--formats", "onnx,coreml", "--exit-at-lr"], "coreml does not take --exit-at-lr"),
        (
            ["--scales", "2", "--formats", "tflite", "--shuffle", "conv-transpose"],
            "tflite does not take --shuffle",
        ),
        (
            ["--scales", "2", "--formats", "executorch-vulkan", "--io", "image"],
            "executorch-vulkan does not take --io",
        ),
        (["--scales", "2", "--formats", "onnx", "--io", "bitmap"], "invalid choice: 'bitmap'"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    save_checkpoint(build_model("pcarn-test", scales=(2,)), tmp_path / "x2only.safetensors")
    if "--model" not in args:
        args = [*args, "--model", "x2only.safetensors"]
    if "--out" not in args:
        args = [*args, "--out", "exported"]
    result = run_cli("export", *args, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "exported").exists() or not any((tmp_path / "exported").iterdir())


@pytest.mark.parametrize("fmt", ["coreml", "tflite", "executorch", "executorch-vulkan"])
def test_every_unaccepted_option_is_refused_before_any_file(tmp_path, fmt):
    from export.formats import FORMATS
    from export.options import OPTIONS

    model = build_model("pcarn-test", scales=(2,))
    refused = [o for o in OPTIONS.values() if o.name not in FORMATS[fmt].options]
    assert refused, f"{fmt} takes every option"
    for option in refused:
        if isinstance(option.default, bool) or option.off_flag:
            value = True  # a switch on (off is what a format without it does)
        else:  # a valid value away from the default
            value = option.choices[-1] if option.choices else option.default * 2
        with pytest.raises(PcarnError, match=f"{fmt} does not take {option.flag}"):
            export_all(
                model,
                tmp_path / "out",
                formats=[fmt],
                scales=[2],
                precisions=["fp32"],
                options={option.name: value},
                progress=False,
            )
        assert not (tmp_path / "out").exists()


def test_every_function_a_format_declares_exists():
    """The table names its functions without importing them (the CLI's help stays free of torch);
    each name must resolve to a callable of that module."""
    for fmt in FORMATS.values():
        functions = fmt.functions()
        assert {"export", "runner", "session", "read_metadata", "input_shape", "check"} <= set(functions)
        for name, lazy in functions.items():
            assert callable(lazy.resolve()), f"{fmt.name}.{name} -> {lazy.module}:{lazy.attribute}"


def test_every_file_says_which_phone_accelerator_it_can_run_on(tiny_manifest):
    out, manifest = tiny_manifest
    verdicts = {e["path"]: e["accelerators"] for e in manifest["files"]}
    for path, targets in verdicts.items():
        assert set(targets) == {"cpu", "mobile_gpu", "npu", "neural_engine"}, path
        assert all(v["status"] in ("full", "partial", "none", "not checked", "n/a") for v in targets.values())
    onnx = verdicts["pcarn-test_x4_fp32.onnx"]
    assert onnx["npu"]["status"] == "full" and "NNAPI" in onnx["npu"]["detail"]  # DCR, rank 4, one partition
    assert onnx["neural_engine"]["status"] == "full"
    assert verdicts["pcarn-test_x4_fp16.tflite"]["mobile_gpu"]["status"] == "full"
    assert verdicts["pcarn-test_x4_fp32.mlpackage"]["neural_engine"]["status"] == "none"  # fp32 compute
    assert verdicts["pcarn-test_x4_fp16.mlpackage"]["neural_engine"]["status"] == "full"
    report = (out / "report.md").read_text()
    assert "## Accelerators" in report and "| pcarn-test_x4_fp16.tflite | full | full |" in report


def test_a_crd_shuffle_or_a_rank_6_tensor_is_called_off_the_accelerator(tmp_path, monkeypatch):
    """The rules can fail: PyTorch's own CRD DepthToSpace is not NNAPI's, and the GPU delegate takes
    no tensor above rank 4."""
    import onnx

    import export.onnx.exporter as onnx_exporter
    from export.common import DeployHead
    from export.onnx.accelerators import onnx_accelerators
    from export.tflite.accelerators import _gpu

    monkeypatch.setattr(onnx_exporter, "to_dcr", lambda model: model)  # the graph as torch writes it
    head = DeployHead(deterministic_weights(build_model("pcarn-test")), 2)
    path = tmp_path / "crd.onnx"
    path.write_bytes(onnx_exporter.simplified_fp32(head, (24, 32), False))
    assert any(n.op_type == "DepthToSpace" for n in onnx.load(str(path)).graph.node)
    npu = onnx_accelerators(path, "fp32")["npu"]
    assert npu.status == "partial" and "DepthToSpace(CRD)" in npu.unsupported
    gpu = _gpu(["CONV_2D", "RESHAPE", "TRANSPOSE", "RESHAPE"], max_rank=6)
    assert gpu.status == "partial" and "rank-6 tensors" in gpu.unsupported


def test_coreml_dynamic_is_a_few_enumerated_sizes(tmp_path):
    """Core ML's flexible ranges can drop a model off the Neural Engine; enumerated sizes keep it."""
    import coremltools as ct

    manifest = export_all(
        deterministic_weights(build_model("pcarn-test")),
        tmp_path,
        formats=["onnx", "coreml"],
        scales=[4],
        precisions=["fp16"],
        input_size=(24, 32),
        provenance={"variant": "pcarn-test", "path": "memory"},
        options={"dynamic": True},
        progress=False,
    )
    assert manifest["all_passed"], manifest
    path = tmp_path / "pcarn-test_x4_fp16.mlpackage"
    spec = ct.utils.load_spec(str(path))
    shapes = [list(s.shape) for s in spec.description.input[0].type.multiArrayType.enumeratedShapes.shapes]
    assert shapes == [[1, 3, 24, 32], [1, 3, 180, 320], [1, 3, 270, 480], [1, 3, 256, 256]]
    entry = manifest["files"][1]
    assert entry["accelerators"]["neural_engine"]["status"] == "full"
    assert "enumerated" in entry["accelerators"]["neural_engine"]["detail"]
