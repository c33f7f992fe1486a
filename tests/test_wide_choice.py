"""The mixed-precision choice (``export.mixed.choose_kept``) on a made-up graph: its cost is the
mean of each selection crop's cost, as a reported cost is the mean of photos' PSNR, because the same
rounding noise costs a smooth photo more dB."""

from __future__ import annotations

import numpy as np
import pytest

from export.mixed import SAFETY, choose_kept
from toolkit.metrics.fidelity import rgb_to_y

# rounding noise each activation adds at 8 bits, the same on every crop (MSE in 8-bit Y levels)
NOISE = {"loud": 0.05, "quiet": 0.001}
ERRORS = (100.0, 1.0)  # the fp32 model's MSE against HR: a detailed crop, a smooth one


def _graph(errors: tuple[float, ...]):
    hr = [np.full((20, 20, 3), 128.0) for _ in errors]
    reference = [rgb_to_y(h) + np.sqrt(e) for h, e in zip(hr, errors, strict=True)]

    def outputs(narrow):
        shift = np.sqrt(sum(NOISE[name] for name in narrow))
        return [r + shift for r in reference]

    return reference, hr, outputs


def test_a_smooth_crop_widens_what_the_pooled_cost_would_have_left_8_bit():
    reference, hr, outputs = _graph(ERRORS)
    budget = 0.1
    pooled_cost = 10 * np.log10((np.mean(ERRORS) + sum(NOISE.values())) / np.mean(ERRORS))
    assert pooled_cost < SAFETY * budget  # pooled over crops, all 8-bit would have fitted
    choice = choose_kept(list(NOISE), outputs, reference, hr, budget, border=1, kept_as="16-bit")
    assert choice.wide == ("loud",)
    assert choice.predicted_cost_db == pytest.approx(_mean_cost(NOISE["quiet"]))
    assert choice.all_int8_cost_db == pytest.approx(_mean_cost(sum(NOISE.values())))


def _mean_cost(noise: float) -> float:
    return float(np.mean([10 * np.log10(1 + noise / e) for e in ERRORS]))


def test_a_budget_every_crop_meets_keeps_all_activations_8_bit():
    reference, hr, outputs = _graph((100.0, 50.0))
    choice = choose_kept(list(NOISE), outputs, reference, hr, 0.1, border=1, kept_as="float")
    assert choice.wide == () and choice.summary().startswith("0 of 2 activations float")


def test_when_even_the_wide_graph_misses_the_budget_every_activation_stays_wide_unranked():
    """The wide graph's own noise (16-bit rounding, int8 weights) over the selection share: no
    8-bit activation can fit, so the choice keeps them all wide without ranking them one by one
    (what took most of a GAN head's ONNX choice)."""
    reference, hr, _ = _graph(ERRORS)
    asked = []

    def outputs(narrow):
        asked.append(tuple(narrow))
        return [r + np.sqrt(0.05 + sum(NOISE[n] for n in narrow)) for r in reference]

    choice = choose_kept(list(NOISE), outputs, reference, hr, 0.1, border=1, kept_as="16-bit")
    assert choice.wide == tuple(NOISE) and choice.predicted_cost_db == pytest.approx(_mean_cost(0.05))
    assert choice.predicted_cost_db > SAFETY * 0.1
    assert asked == [(), tuple(NOISE)]  # the wide graph, then all 8-bit for the report
    assert choice.all_int8_cost_db == pytest.approx(_mean_cost(0.05 + sum(NOISE.values())))


def test_choosing_float_weights_leaves_the_head_s_weights_untouched():
    """The candidates round weights in place, and an exported module shares the head's parameters."""
    torch = pytest.importorskip("torch")
    from export.common import DeployHead
    from export.mixed import Selection
    from export.pt2e_mixed import choose_float_weights
    from models import build_model
    from tests.conftest import deterministic_weights

    head = DeployHead(deterministic_weights(build_model("pcarn-test")), 2).eval()
    before = {k: v.clone() for k, v in head.state_dict().items()}
    rng = np.random.default_rng(0)
    lr = rng.random((8, 12, 3), dtype=np.float32)
    pairs = [(lr, rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))]

    def feed(crop: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None]

    def unfeed(y: torch.Tensor) -> np.ndarray:
        return y[0].permute(1, 2, 0).numpy()

    chosen = choose_float_weights(head, (feed(lr),), Selection((8, 12), [lr], pairs, 2), 1e-6, feed, unfeed)
    assert chosen  # a tiny budget keeps weights float: candidates were rounded on the way
    assert all(torch.equal(before[k], v) for k, v in head.state_dict().items())


def test_a_float_activation_skips_its_q_dq_pair_and_keeps_the_relu_the_quantizer_folded():
    """ONNX Runtime's quantizer folds each Relu into the range of the Q/DQ pair before it; a float
    activation's pair is removed, so the Relu must come back (without it the graph is wrong)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from export.common import DeployHead
    from export.onnx.exporter import simplified_fp32
    from export.onnx.int8 import quantize_onnx
    from export.onnx.mixed import _activation_qparams, bypassed, relu_outputs
    from models import build_model
    from tests.conftest import deterministic_weights

    head = DeployHead(deterministic_weights(build_model("pcarn-test")), 2).eval()
    fp32 = simplified_fp32(head, (24, 32), False)
    rng = np.random.default_rng(0)
    crops = [rng.random((24, 32, 3), dtype=np.float32) for _ in range(2)]
    quantized = onnx.load_from_string(quantize_onnx(fp32, crops, activation_bits=16, range_margin=False))
    names = list(_activation_qparams(quantized))
    x = np.ascontiguousarray(crops[0].transpose(2, 0, 1))[None]

    def run(model) -> np.ndarray:
        serialized = model if isinstance(model, bytes) else model.SerializeToString()
        return ort.InferenceSession(serialized, providers=["CPUExecutionProvider"]).run(None, {"lr": x})[0]

    reference = run(fp32)
    relus = relu_outputs(onnx.load_from_string(fp32))
    assert relus & set(names)  # the quantizer did fold Relus into pairs
    floated = bypassed(quantized, names, relus)  # every activation float: only int8 weights remain
    assert not any(n.op_type == "QuantizeLinear" for n in floated.graph.node)
    scales = {scale for pair in _activation_qparams(quantized).values() for scale in pair}
    assert not scales & {i.name for i in floated.graph.initializer}  # the pairs' parameters went too
    weights_only = np.abs(run(floated) - reference).max()  # 0.003 when written
    folded_relus_lost = np.abs(run(bypassed(quantized, names, set())) - reference).max()  # 0.46
    assert weights_only < 0.02 < folded_relus_lost, (weights_only, folded_relus_lost)
