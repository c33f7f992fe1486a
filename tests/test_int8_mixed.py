"""int8 with a PSNR-Y budget: the fewest activations stay wider (ONNX: 16-bit, ``export/onnx/mixed.py``;
TFLite and ExecuTorch: float, ``export/pt2e_mixed.py``), the file says which, and its cost is judged
against the budget."""

from __future__ import annotations

import collections
import re

import numpy as np
import pytest
import torch

from export.common import DeployHead
from export.formats import get_format
from export.mixed import FLOAT_ACTIVATIONS, FLOAT_CONVS, KEPT_WIDER
from export.onnx.mixed import GRAPH_OUTPUT_SUFFIX
from export.options import chosen
from export.pipeline import export_all
from models import build_model
from tests.conftest import deterministic_weights, tiny_int8_export
from toolkit.errors import PcarnError

onnx = pytest.importorskip("onnx")


def _export(tmp_path, budget: float, fmt: str = "onnx") -> dict:
    return tiny_int8_export(tmp_path, tmp_path / f"out-{fmt}-{budget}", budget, fmt)


def _sixteen_bit_activations(model) -> int:
    zero_points = {i.name: i.data_type for i in model.graph.initializer}
    return sum(
        1
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and zero_points.get(n.input[2]) == onnx.TensorProto.UINT16
    )


def _quantized(model, names: list[str]) -> list[str]:
    """Which of the activations ``names`` a QuantizeLinear reads (a graph output under its suffix)."""
    read = {
        n.input[0].removesuffix(GRAPH_OUTPUT_SUFFIX)
        for n in model.graph.node
        if n.op_type == "QuantizeLinear"
    }
    return [name for name in names if name in read]


def _float_weight_convs(model) -> int:
    """Convs that read a float weight straight from an initializer (no DequantizeLinear)."""
    initializers = {i.name for i in model.graph.initializer}
    return sum(1 for n in model.graph.node if n.op_type == "Conv" and n.input[1] in initializers)


def test_a_generous_budget_keeps_every_activation_8_bit_and_a_tight_one_widens(tmp_path):
    loose, tight = _export(tmp_path, 100.0), _export(tmp_path, 1e-6)
    loose_model, tight_model = (
        onnx.load(str(tmp_path / f"out-onnx-{b}" / m["files"][0]["path"]))
        for b, m in ((100.0, loose), (1e-6, tight))
    )
    loose_note = {p.key: p.value for p in loose_model.metadata_props}[KEPT_WIDER]
    tight_note = {p.key: p.value for p in tight_model.metadata_props}[KEPT_WIDER]
    assert loose_note.startswith("0 of ") and _sixteen_bit_activations(loose_model) == 0
    assert tight["files"][0][KEPT_WIDER] == tight_note  # the manifest says it too
    # a 1e-6 budget: even all 16-bit misses it, so the noisiest activations stay float
    tiers = r"(\d+) conv weights float, \d+ of \d+ activations wider \((\d+) 16-bit, (\d+) float\)"
    weights, sixteen, floats = (int(n) for n in re.match(tiers, tight_note).groups())
    assert sixteen > 0 and _sixteen_bit_activations(tight_model) == sixteen
    float_names = {p.key: p.value for p in tight_model.metadata_props}[FLOAT_ACTIVATIONS].split(",")
    assert floats > 0 and len(float_names) == floats and not _quantized(tight_model, float_names)
    assert weights > 0 and _float_weight_convs(tight_model) >= weights  # tied convs share one
    assert _float_weight_convs(loose_model) == 0  # the file is what it says
    for manifest in (loose, tight):
        (entry,) = manifest["files"]
        assert entry["checks"]["integer_convs"]["passed"], entry["checks"]
        assert entry["checks"]["integer_graph"]["passed"], entry["checks"]
    (entry,) = loose["files"]
    assert entry["parity"]["quantization"]["max_cost_db"] == 100.0 and entry["parity"]["passed"]
    kinds = collections.Counter(n.domain for n in loose_model.graph.node if n.op_type.endswith("Linear"))
    assert set(kinds) == {""}  # no 16-bit tensor: the standard Q/DQ ops mobile providers read


@pytest.mark.parametrize("budget", [0, -0.1, "a lot"])
def test_a_budget_that_is_not_a_positive_number_is_refused(budget):
    with pytest.raises(PcarnError, match="--int8-budget must be a positive number"):
        chosen({"int8_budget": budget})


@pytest.mark.parametrize("fmt, module", [("tflite", "litert_torch"), ("executorch", "executorch")])
def test_a_pt2e_budget_leaves_activations_float_and_the_file_runs_as_chosen(tmp_path, fmt, module):
    pytest.importorskip(module)
    loose, tight = _export(tmp_path, 100.0, fmt), _export(tmp_path, 1e-6, fmt)
    (loose_entry,), (tight_entry,) = loose["files"], tight["files"]
    assert loose_entry[KEPT_WIDER].startswith("0 of ")
    weights, kept = re.match(r"(\d+) conv weights float, (\d+) of ", tight_entry[KEPT_WIDER]).groups()
    assert int(weights) > 0 and int(kept) > 0 and "activations float" in tight_entry[KEPT_WIDER]
    declared = [
        int(get_format(fmt).read_metadata(tmp_path / f"out-{fmt}-{b}" / m["files"][0]["path"])[FLOAT_CONVS])
        for b, m in ((100.0, loose), (1e-6, tight))
    ]
    assert declared[0] == 0 and declared[1] > 0
    for entry in (loose_entry, tight_entry):  # the declared float convs are the file's float convs
        assert all(c["passed"] for c in entry["checks"].values()), entry["checks"]
    assert loose_entry["parity"]["passed"], loose_entry["parity"]
    # every weight and activation float: what is left is float rounding (1e-5 dB), over a 1e-6 budget
    assert abs(tight_entry["parity"]["quantization"]["cost_db"]) < 1e-3, tight_entry["parity"]
    # float where it was noisy: the file runs closer to fp32 PyTorch
    assert tight_entry["parity"]["psnr_db"] > loose_entry["parity"]["psnr_db"] + 3


def test_formats_without_int8_refuse_a_budget():
    with pytest.raises(PcarnError, match="executorch-vulkan does not take --int8-budget"):
        export_all(
            build_model("pcarn-test"),
            "unused",
            formats=["onnx", "executorch-vulkan"],
            scales=[2],
            precisions=["int8"],
            progress=False,
            options={"int8_budget": 0.1},
        )


def test_a_core_ml_budget_keeps_weights_then_activations_float_and_the_program_declares_them(tmp_path):
    """Core ML cannot run here: the choice is made on the program's PyTorch reference, weights first
    (convs left out of quantization), and the checks count the convs that run float against what the
    file declares."""
    pytest.importorskip("coremltools")
    from export.coreml.checks import coreml_program

    loose, tight = _export(tmp_path, 100.0, "coreml"), _export(tmp_path, 1e-6, "coreml")
    (loose_entry,), (tight_entry,) = loose["files"], tight["files"]
    assert loose_entry[KEPT_WIDER].startswith("0 of ")
    weights, kept, total = (
        int(n)
        for n in re.match(
            r"(\d+) conv weights float, (\d+) of (\d+) activations float", tight_entry[KEPT_WIDER]
        ).groups()
    )
    assert weights > 0 and 0 <= kept <= total
    declared, quantize_ops, float_weight_convs = [], [], []
    for budget, manifest in ((100.0, loose), (1e-6, tight)):
        path = tmp_path / f"out-coreml-{budget}" / manifest["files"][0]["path"]
        model, operations = coreml_program(path)
        declared.append(int(model.user_defined_metadata[FLOAT_CONVS]))
        quantize_ops.append(sum(1 for op in operations if op.type == "quantize"))
        producer = {out.name: op.type for op in operations for out in op.outputs}
        float_weight_convs.append(
            sum(
                1
                for op in operations
                if op.type == "conv"
                and producer.get(op.inputs["weight"].arguments[0].name) != "constexpr_affine_dequantize"
            )
        )
    # a chosen conv module may be called more than once (tied weights): each call runs float
    assert declared[0] == float_weight_convs[0] == 0
    assert declared[1] >= float_weight_convs[1] >= weights
    # the program is what the note says: a quantize op for each int8 activation left (input mean aside)
    assert quantize_ops[1] <= quantize_ops[0] - kept
    for entry in (loose_entry, tight_entry):
        failed = {k: c["detail"] for k, c in entry["checks"].items() if c["passed"] is False}
        assert not failed, failed
        assert entry["parity"]["passed"], entry["parity"]


def test_a_core_ml_choice_from_another_model_is_refused(tiny_model):
    pytest.importorskip("coremltools")
    from export.coreml.int8 import quantized_head

    crop = np.zeros((12, 16, 3), dtype=np.float32)
    with pytest.raises(PcarnError, match="conv 'net.nowhere', which this head does not have"):
        quantized_head(DeployHead(tiny_model, 2).eval(), (12, 16), [crop], float_weights=("net.nowhere",))


def test_a_tied_unit_with_one_float_call_lowers_to_xnnpack_and_runs(tmp_path):
    """A float call of a tied unit gets its own fp32 weights and bias: XNNPACK stores a parameter
    once, and the integer calls' int32 bias once reached the float call (the file then failed to
    load)."""
    pytest.importorskip("executorch")
    from export.checks import expectation
    from export.common import DeployHead
    from export.executorch.checks import check_executorch
    from export.executorch.exporter import lowered, runner
    from export.executorch.int8 import quantized_program
    from export.shuffle_forms import Rank4ShuffleHead

    deploy = DeployHead(deterministic_weights(build_model("pcarn-test")), 2).eval()
    head = Rank4ShuffleHead(deploy, False).eval()
    graph = torch.export.export(head, (torch.rand(1, 3, 24, 32),)).module().graph
    convs = [n for n in graph.nodes if n.op == "call_function" and n.target == torch.ops.aten.conv2d.default]
    calls = collections.defaultdict(list)
    for conv in convs:
        calls[conv.args[1].target].append(conv)
    second_call = next(c[1] for c in calls.values() if len(c) > 1)
    (relu,) = second_call.users  # conv1 of the unit's second call, ReLU fused: float from here
    crops = [np.random.default_rng(i).random((24, 32, 3), dtype=np.float32) for i in range(2)]
    program, float_convs = quantized_program(head, (24, 32), crops, False, (relu.name,))
    assert float_convs == 2  # that conv (float output) and the next one (float input)
    path = tmp_path / "mixed.pte"
    path.write_bytes(lowered(program, {"scale": 2, FLOAT_CONVS: float_convs}))
    report = check_executorch(path, expectation(deploy), "int8")
    assert report.checks["integer_convs"]["passed"], report.checks["integer_convs"]
    assert report.checks["xnnpack"]["passed"], report.checks["xnnpack"]
    x = crops[0].transpose(2, 0, 1)[None]
    with torch.no_grad():
        reference = head(torch.from_numpy(x)).numpy()
    assert np.abs(runner(path)(x) - reference).max() < 0.1  # it loads, and runs as an int8 graph does


def test_a_core_ml_graph_with_every_weight_and_activation_float_is_the_fp32_head(tiny_model):
    """Nothing else is rounded: the quantizer's own 8-bit copy of the input mean shifted the whole
    picture by up to 0.0009 (more than PCARN-M's int8 weights cost), so constants stay float."""
    pytest.importorskip("coremltools")
    from export.coreml.int8 import quantized_head
    from export.coreml.mixed import activations

    head = DeployHead(tiny_model, 2).eval()
    crop = np.random.default_rng(0).random((12, 16, 3), dtype=np.float32)
    convs = tuple(n for n, m in head.named_modules() if isinstance(m, torch.nn.Conv2d))
    names = activations(quantized_head(head, (12, 16), [crop], float_weights=convs))
    graph = quantized_head(head, (12, 16), [crop], tuple(names), convs)
    x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None]
    with torch.no_grad():
        assert torch.allclose(graph(x), head(x), atol=1e-6)


def test_the_coreml_weight_choice_rounds_weights_on_coremltools_grid(tiny_model):
    """The weight choice predicts what int8 weights cost, so it must round them as the quantizer
    stores them: coremltools' symmetric int8 spans [-128, 127] (step: largest magnitude / 127.5),
    not PT2E's [-127, 127]."""
    quantization = pytest.importorskip("coremltools.optimize.torch.quantization")
    from export.coreml.int8 import WEIGHT_LEVELS
    from toolkit.int8_rounding import int8_round_trip

    config = quantization.LinearQuantizerConfig.from_dict(
        {"global_config": {"quantization_scheme": "symmetric", "weight_observer": "min_max"}}
    )
    quantizer = quantization.LinearQuantizer(DeployHead(tiny_model, 2).eval(), config)
    prepared = quantizer.prepare(example_inputs=(torch.rand(1, 3, 12, 16),), inplace=False)
    convs = [m for m in prepared.modules() if getattr(m, "weight_fake_quant", None) is not None]
    assert convs
    other_grid = 0
    for conv in convs:
        conv.weight_fake_quant.enable_observer()
        conv.weight_fake_quant.enable_fake_quant()
        with torch.no_grad():
            stored = conv.weight_fake_quant(conv.weight)
        weight = conv.weight.detach()
        step = weight.abs().amax(dim=(1, 2, 3), keepdim=True) / 127.5
        ours = int8_round_trip(weight, WEIGHT_LEVELS)
        # the same levels; only a channel's largest magnitude, exactly half a step past 127, may round
        # to either end (x / s against x * (1 / s))
        apart = (stored - ours).abs() > step * 1e-3
        assert ((stored - ours).abs() <= step * 1.001).all()
        extreme = (weight.abs() / step - 127.5).abs() < 1e-3
        assert not (apart & ~extreme).any()
        other_grid += int(((stored - int8_round_trip(weight)).abs() > step * 1e-3).any())
    assert other_grid, "PT2E's grid would have matched too: the test cannot tell them apart"
