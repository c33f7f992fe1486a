"""Core ML parity without running: Core ML cannot run on Linux, so every weight in the ML Program is
compared with PyTorch (exact for fp32, equal to the float16 rounding for fp16, within one step for
int8) and its conv sequence with the ONNX graph's written in the same run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.common import DeployHead
from export.coreml.checks import coreml_program, coreml_weights
from export.optional import require


def _dequantized_weights(weights: dict) -> dict[str, np.ndarray]:
    """int8 weights (quantized data, scale, zero point per output channel) back in float32."""
    out = {}
    for name, meta in weights.items():
        if not name.endswith("_quantized_data"):
            continue
        base = name.removesuffix("_quantized_data")
        if base + "_scale" not in weights:  # a scalar-scaled constant (not a conv weight)
            continue
        q = np.asarray(meta.val).astype(np.float32)
        shape = (-1,) + (1,) * (q.ndim - 1)
        scale = np.asarray(weights[base + "_scale"].val, dtype=np.float32).reshape(shape)
        zero = np.asarray(weights[base + "_zero_point"].val, dtype=np.float32).reshape(shape)
        out[base] = (q - zero) * scale
        out[base + "#step"] = np.broadcast_to(scale, q.shape)
    return out


def coreml_static_parity(head: DeployHead, path: Path, precision: str, onnx_path: Path | None) -> dict:
    """Weights equal PyTorch's, and the conv sequence equals the ONNX graph's."""
    model, operations = coreml_program(path)
    weights = coreml_weights(model)
    by_name = {}
    for name, meta in weights.items():
        key = name.removesuffix("_to_fp16").removeprefix("inner_")  # an image file's graph is wrapped
        by_name[key] = np.asarray(meta.val)
    steps = {}
    if precision == "int8":
        dequantized = _dequantized_weights(weights)
        steps = {
            k.removesuffix("#step").removeprefix("inner_"): v
            for k, v in dequantized.items()
            if k.endswith("#step")
        }
        by_name.update(
            {k.removeprefix("inner_"): v for k, v in dequantized.items() if not k.endswith("#step")}
        )
    mismatched, missing = [], []
    for name, param in head.net.named_parameters():
        key = "net_" + name.replace(".", "_")
        expected = param.detach().numpy()
        if precision != "fp32":
            expected = expected.astype(np.float16)
        got, step = by_name.get(key), None
        if got is None and precision == "int8":
            # int8 weights are named after their cast; a conv fused with its ReLU gains a "_0"
            stem, leaf = key.rsplit("_", 1)
            for candidate in (key, f"{stem}_0_{leaf}"):
                if candidate in by_name or candidate + "_cast_fp16" in by_name:
                    found = candidate if candidate in by_name else candidate + "_cast_fp16"
                    got, step = by_name[found], steps.get(found)
                    break
        if got is None:
            missing.append(name)
        elif got.shape != expected.shape:
            mismatched.append(name)
        elif step is not None:  # an int8 weight: within one quantization step of PyTorch's
            if np.any(np.abs(got - expected.astype(np.float32)) > 1.001 * step + 1e-6):
                mismatched.append(name)
        elif not np.array_equal(got, expected):
            mismatched.append(name)

    def weight_shape(name: str) -> tuple[int, ...]:
        return tuple(np.asarray(weights.get(name, weights.get(name + "_quantized_data")).val).shape)

    coreml_convs = [
        weight_shape(op.inputs["weight"].arguments[0].name) for op in operations if op.type == "conv"
    ]
    sequence_note = "no ONNX file in this run to compare the op sequence with"
    same_sequence = None
    if onnx_path is not None and onnx_path.exists():
        onnx = require("onnx")
        from onnx import numpy_helper

        graph = onnx.load(str(onnx_path)).graph
        inits = {i.name: numpy_helper.to_array(i).shape for i in graph.initializer}
        # a weight folded at export (an image file's x255 in the exit conv) is a Constant node
        inits.update(
            {n.output[0]: tuple(n.attribute[0].t.dims) for n in graph.node if n.op_type == "Constant"}
        )
        # fp16 weights arrive through a Cast, int8 ones through a DequantizeLinear (a folded one
        # also through a QuantizeLinear)
        links = ("Cast", "DequantizeLinear", "QuantizeLinear")
        casts = {n.output[0]: n.input[0] for n in graph.node if n.op_type in links}

        def source(name: str) -> str:
            while name not in inits and name in casts:
                name = casts[name]
            return name

        onnx_convs = [tuple(inits[source(n.input[1])]) for n in graph.node if n.op_type == "Conv"]
        props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
        if props.get("exit_at_lr") == "true":  # that file's exit conv runs before the last shuffle
            onnx_convs, coreml_convs = onnx_convs[:-1], coreml_convs[:-1]
        same_sequence = onnx_convs == coreml_convs
        sequence_note = (
            f"{len(coreml_convs)} convs in the same order and shapes as the ONNX graph"
            if same_sequence
            else "conv sequence differs from the ONNX graph"
        )
    passed = not mismatched and not missing and same_sequence is not False
    how = {"fp32": " exactly", "fp16": " (fp16-rounded)", "int8": " (int8 weights within one step)"}[
        precision
    ]
    detail = (
        f"{len(list(head.net.parameters())) - len(mismatched) - len(missing)} of "
        f"{len(list(head.net.parameters()))} weights equal PyTorch{how}; {sequence_note}"
    )
    if missing or mismatched:
        detail += f"; first problem: {(missing or mismatched)[0]}"
    return {"ran": False, "passed": passed, "rule": detail}
