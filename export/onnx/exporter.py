"""ONNX export: opset 17, simplified with onnxsim, pixel shuffle as one DepthToSpace per stage in DCR
mode, the one mobile execution providers run (``export/onnx/dcr.py``), or, with
``shuffle="conv-transpose"``, one one-hot ConvTranspose per stage.

fp16 files store float16 weights behind a Cast, so inputs and outputs stay float32 and every runtime
can run them; the Cast is folded when the session loads.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import torch

from export.image_io import IMAGE, TENSOR, ImageIO, from_images, is_image_file, sample_pixels
from export.job import ExportJob
from export.mixed import FLOAT_ACTIVATIONS, FLOAT_CONVS, KEPT_WIDER, WideChoice, selection
from export.onnx.dcr import to_dcr
from export.onnx.int8 import quantize_onnx
from export.onnx.mixed import (
    FLOAT_SHARE,
    bypassed,
    choose_float_weights,
    choose_wide,
    conv_nodes,
    conv_weights,
    relu_outputs,
)
from export.optional import require
from export.options import INT8_BUDGET_DB
from toolkit.errors import PcarnError

OPSET = 17


def export(
    job: ExportJob,
    dynamic: bool = False,
    io: str = TENSOR,
    int8_budget: float = INT8_BUDGET_DB,
) -> Path:
    """``job.graph`` (any exit placement and shuffle form, ``export/graph.py``) traced, simplified and
    written; ``dynamic``: height and width left free; ``io="image"``: uint8 NHWC in and out
    (``export/image_io.py``); int8: the fewest activations 16-bit (or float, where 16 bits are not
    enough) for ``int8_budget`` dB of PSNR-Y (``export/onnx/mixed.py``)."""
    onnx = require("onnx")
    image = io == IMAGE
    key = ("onnx", dynamic, job.form, image)
    graph = ImageIO(job.graph) if image else job.graph
    fp32 = job.reuse(key, lambda: simplified_fp32(graph, job.input_size, dynamic, image))
    if job.precision == "w8a16":  # 16-bit activations everywhere
        model = onnx.load_from_string(
            quantize_onnx(fp32, job.calibration_inputs(), image, activation_bits=16, ranges=job.ranges)
        )
    elif job.precision == "int8":
        rules = ("float activations", FLOAT_SHARE)  # choices made before float activations miss
        choice = job.choice(
            ("onnx-wide", job.form, image, int8_budget, rules),
            lambda: _wide_choice(job, graph, image, int8_budget),
        )
        float_model = onnx.load_from_string(fp32)
        floating = _float_convs(float_model, choice)
        inputs = job.calibration_inputs()
        model = onnx.load_from_string(
            quantize_onnx(fp32, inputs, image, wide=choice.wide, float_convs=floating, ranges=job.ranges)
        )
        if choice.float_activations:
            model = bypassed(model, choice.float_activations, relu_outputs(float_model))
            job.metadata[FLOAT_ACTIVATIONS] = ",".join(choice.float_activations)
        job.metadata[KEPT_WIDER] = choice.note()
        job.metadata[FLOAT_CONVS] = len(floating)
    else:
        model = onnx.load_from_string(fp32)
    if job.precision == "fp16":
        model = _float16_weights(model)
    del model.metadata_props[:]
    for key, value in job.metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model)
    onnx.save(model, str(job.path))
    return job.path


def _wide_choice(job: ExportJob, graph: torch.nn.Module, image: bool, budget: float) -> WideChoice:
    """The conv weights this head keeps float, then the activations it keeps 16-bit, chosen on a
    small copy of its graph."""
    onnx = require("onnx")
    chosen_on = selection(job)
    small = simplified_fp32(graph, chosen_on.size, False, image)
    weights = choose_float_weights(small, chosen_on.pairs, budget, chosen_on.border, image)
    floating = conv_nodes(conv_weights(onnx.load_from_string(small)), weights)
    sixteen = quantize_onnx(
        small, chosen_on.crops, image, activation_bits=16, range_margin=False, float_convs=floating
    )
    choice = choose_wide(small, sixteen, chosen_on.pairs, budget, chosen_on.border, image)
    return dataclasses.replace(choice, float_weights=weights)


def _float_convs(model, choice: WideChoice) -> tuple[str, ...]:
    """The Conv nodes of the file's graph ``model`` that run float, after checking that it names
    every tensor the choice (made on a smaller copy) named."""
    known = {out for node in model.graph.node for out in node.output}
    weights = conv_weights(model)
    missing = [n for n in choice.wide if n not in known]
    missing += [w for w in choice.float_weights if w not in weights]
    if missing:  # the small graph and the file's graph named a tensor differently
        raise PcarnError(f"mixed precision chose {missing[0]!r}, which this graph does not have")
    return conv_nodes(weights, choice.float_weights)


def simplified_fp32(
    head: torch.nn.Module, input_size: tuple[int, int], dynamic: bool, image: bool = False
) -> bytes:
    """The traced fp32 graph after onnxsim, serialized: what every precision starts from; ``image``:
    ``head`` takes uint8 NHWC pixels."""
    onnx = require("onnx")
    onnxsim = require("onnxsim")
    sample = sample_pixels(input_size) if image else torch.rand(1, 3, *input_size)
    buffer = BytesIO()
    h, w = (1, 2) if image else (2, 3)
    axes = {"lr": {h: "height", w: "width"}, "sr": {h: "out_height", w: "out_width"}} if dynamic else None
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
    model = to_dcr(onnx.load_from_string(buffer.getvalue()))
    simplified, ok = onnxsim.simplify(model)
    return (simplified if ok else model).SerializeToString()


def plain(net: torch.nn.Module, path: Path, shape: tuple[int, ...]) -> None:
    """Any NCHW module as a plain fp32 ONNX file (no simplification): models timed beside ours."""
    torch.onnx.export(
        net,
        (torch.rand(*shape),),
        str(path),
        input_names=["lr"],
        output_names=["sr"],
        opset_version=OPSET,
        dynamo=False,
    )


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


def ort_session(path: Path, threads: int | None = None, profile_prefix: str | None = None):
    """An ONNX Runtime CPU session with every graph optimisation, as apps create it."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runner(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The file in one ONNX Runtime (CPU) session, called as often as needed; NCHW float32 in and out
    (an image file's pixels converted around it)."""
    session = ort_session(path, threads)
    name = session.get_inputs()[0].name
    if is_image_file(session.get_modelmeta().custom_metadata_map):
        return from_images(lambda pixels: session.run(None, {name: pixels})[0])
    return lambda lr_nchw: session.run(None, {name: lr_nchw.astype(np.float32)})[0]


def timed_session(path: Path, threads: int, x: np.ndarray):
    session = ort_session(path, threads)
    name = session.get_inputs()[0].name
    return lambda: session.run(None, {name: x})


def _graph(path: Path):
    return require("onnx").load(str(path), load_external_data=False)


def read_metadata(path: Path) -> dict:
    return {p.key: p.value for p in _graph(path).metadata_props}


def input_shape(path: Path) -> list[int]:
    return [d.dim_value for d in _graph(path).graph.input[0].type.tensor_type.shape.dim]
