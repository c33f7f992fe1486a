"""ONNX export: opset 17, simplified with onnxsim, pixel shuffle as one DepthToSpace (CRD) per stage.

fp16 files store float16 weights behind a Cast, so inputs and outputs stay float32 and every runtime
can run them; the Cast is folded when the session loads.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from export.common import DeployHead
from export.optional import require

NAME = "onnx"
SUFFIX = ".onnx"
LAYOUT = "NCHW"
OPSET = 17


def export(
    head: DeployHead,
    path: Path,
    input_size: tuple[int, int],
    precision: str,
    metadata: dict,
    dynamic: bool = False,
) -> Path:
    onnx = require("onnx")
    onnxsim = require("onnxsim")
    sample = torch.rand(1, 3, *input_size)
    buffer = io.BytesIO()
    axes = {"lr": {2: "height", 3: "width"}, "sr": {2: "out_height", 3: "out_width"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            head.eval(),
            (sample,),
            buffer,
            input_names=["lr"],
            output_names=["sr"],
            opset_version=OPSET,
            dynamic_axes=axes,
            dynamo=False,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    simplified, ok = onnxsim.simplify(model)
    if ok:
        model = simplified
    if precision == "fp16":
        model = _float16_weights(model)
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _float16_weights(model):
    """Store every float32 initializer as float16 and cast it back at load time."""
    onnx = require("onnx")
    from onnx import helper, numpy_helper

    graph = model.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def run(path: Path, lr_nchw: np.ndarray) -> np.ndarray:
    """Run the file in ONNX Runtime (CPU); NCHW float32 in and out."""
    ort = require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"lr": lr_nchw.astype(np.float32)})[0]
