"""Core ML export: an ML Program (.mlpackage) for iOS 15+, fp32 or fp16 compute precision.

``io="image"`` declares RGB ``ImageType`` input (scaled by 1/255) and output, what an app hands over
and gets back as a ``CVPixelBuffer``; the graph rounds and clamps its output to [0, 255] before the
output conversion (``export/image_io.py``). Core ML cannot run on Linux; there, parity checks the
weights instead.
"""

from __future__ import annotations

import platform
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from export.common import DeployHead
from export.coreml.int8 import WEIGHT_LEVELS, chosen_float, quantized_head
from export.coreml.mixed import float_convs
from export.coreml.parity import coreml_static_parity
from export.image_io import IMAGE, TENSOR, LevelsOut, from_images, is_image_file
from export.job import ExportJob
from export.mixed import FLOAT_CONVS, KEPT_WIDER, selection
from export.optional import require
from export.options import INT8_BUDGET_DB


def export(
    job: ExportJob, io: str = TENSOR, dynamic: bool = False, int8_budget: float = INT8_BUDGET_DB
) -> Path:
    """``dynamic``: a few enumerated input sizes (the export size, the LR sizes of 720p and 1080p
    outputs, a 256x256 tile), which keep a model on the Neural Engine where flexible ranges may not
    (coremltools #1764, #2370); int8: the fewest conv weights, then activations, float for
    ``int8_budget`` dB of PSNR-Y (``export/coreml/mixed.py``)."""
    ct = require("coremltools")
    image = io == IMAGE
    if job.precision == "int8":
        # the converter's version is part of the key: another one may quantize differently
        key = ("coreml-weights-first", ct.__version__, int8_budget, WEIGHT_LEVELS)
        choice = job.choice(key, lambda: chosen_float(job.graph, selection(job), int8_budget))
        graph = quantized_head(
            job.graph,
            job.input_size,
            job.calibration_inputs(),
            choice.wide,
            choice.float_weights,
            job.ranges,
        )
        job.metadata[KEPT_WIDER] = choice.note()
        job.metadata[FLOAT_CONVS] = float_convs(graph)
        traced = _traced(LevelsOut(graph) if image else graph)
    else:
        traced = job.reuse(
            ("coreml-trace", image), lambda: _traced(LevelsOut(job.graph) if image else job.graph)
        )
    shape = (1, 3, *job.input_size)
    metadata = dict(job.metadata)
    if dynamic:
        sizes = enumerated_sizes(job.input_size, int(job.metadata["scale"]))
        shape = ct.EnumeratedShapes(shapes=[(1, 3, *size) for size in sizes], default=(1, 3, *job.input_size))
        metadata["dynamic"] = "enumerated: " + ", ".join(f"{h}x{w}" for h, w in sizes)
    if image:
        inputs = [ct.ImageType(name="lr", shape=shape, scale=1 / 255.0, color_layout=ct.colorlayout.RGB)]
        outputs = [ct.ImageType(name="sr", color_layout=ct.colorlayout.RGB)]
        metadata.update(input_layout="image (RGB)", output_layout="image (RGB)")
    else:
        inputs = [ct.TensorType(name="lr", shape=shape, dtype=np.float32)]
        outputs = [ct.TensorType(name="sr")]
    # int8 programs compute in float16 between their quantized tensors, as devices run them
    compute = ct.precision.FLOAT32 if job.precision == "fp32" else ct.precision.FLOAT16
    # image outputs need iOS 16
    target = ct.target.iOS17 if job.precision == "int8" else ct.target.iOS16 if image else ct.target.iOS15
    # the x255 of an image output stays its own op: fused into the exit conv's weights it would
    # leave them unlike PyTorch's, and the weight checks and static parity read them
    passes = ct.PassPipeline()  # the default passes, a copy of its own
    if image:
        passes.remove_passes(["common::fuse_conv_scale"])
    model = ct.convert(
        traced,
        inputs=inputs,
        outputs=outputs,
        pass_pipeline=passes,
        convert_to="mlprogram",
        minimum_deployment_target=target,
        compute_precision=compute,
        skip_model_load=True,
    )
    model.author = "pcarn-toolkit"
    model.short_description = f"PCARN {job.metadata['variant']} x{job.metadata['scale']} super-resolution"
    model.user_defined_metadata.update({k: str(v) for k, v in metadata.items()})
    model.save(str(job.path))
    return job.path


def enumerated_sizes(size: tuple[int, int], scale: int) -> list[tuple[int, int]]:
    """The export size, then the LR sizes of 720p and 1080p outputs and a 256x256 tile, once each."""
    outputs = [(720, 1280), (1080, 1920)]
    sizes = [tuple(size), *((-(-h // scale), -(-w // scale)) for h, w in outputs), (256, 256)]
    return list(dict.fromkeys(sizes))


def _traced(head: torch.nn.Module) -> torch.jit.ScriptModule:
    """TorchScript of the head, traced on a small input: the trace records sizes symbolically and the
    converter is given the file's input shape, so tracing a 720p-sized head (and, with the default
    ``check_trace``, running it twice more) is not needed; a fake-quantized int8 head took 36 s."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(head.eval(), torch.rand(1, 3, 24, 32), check_trace=False)


def platform_limit() -> str | None:
    if platform.system() != "Darwin":
        return "Core ML runs only on macOS"
    return None


def _model(path: Path, load: bool = True):
    ct = require("coremltools")
    if not load:
        return ct.models.MLModel(str(path), skip_model_load=True)
    return ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)


def runner(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    model = _model(path)  # Core ML picks its own threads
    if is_image_file(read_metadata(path)):  # PIL images in and out (macOS only; not run here)
        Image = require("PIL.Image")
        return from_images(
            lambda pixels: np.asarray(model.predict({"lr": Image.fromarray(pixels[0])})["sr"])[None]
        )
    return lambda lr_nchw: np.asarray(model.predict({"lr": lr_nchw.astype(np.float32)})["sr"])


def timed_session(path: Path, threads: int, x: np.ndarray):
    model = _model(path)  # Core ML picks its own threads; CPU_ONLY keeps it off the GPU and ANE
    inputs = {"lr": require("PIL.Image").fromarray(x[0]) if x.dtype == np.uint8 else x}
    return lambda: model.predict(inputs)


def read_metadata(path: Path) -> dict:
    return dict(_model(path, load=False).user_defined_metadata)


def input_shape(path: Path) -> list[int]:
    described = _model(path, load=False).get_spec().description.input[0].type
    if described.WhichOneof("Type") == "imageType":
        return [1, 3, described.imageType.height, described.imageType.width]
    return [int(d) for d in described.multiArrayType.shape]


def static_parity(head: DeployHead, path: Path, precision: str, siblings: dict[str, Path]) -> dict:
    """Off macOS: weights against PyTorch and the conv sequence against the ONNX file of this head."""
    return coreml_static_parity(head, path, precision, siblings.get("onnx"))
