"""ExecuTorch export: ``torch.export`` of the NCHW head, lowered whole to the XNNPACK delegate.

fp32, and int8 within ``--int8-budget`` (``export/executorch/int8.py``: the noisiest activations
stay float).
The file's metadata is a constant method ``metadata`` returning the JSON document as a uint8
tensor, so it travels inside the ``.pte`` and an app reads it with the same runtime
(``export/executorch/file.py`` reads it without one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from export.executorch.file import FORWARD, PTEFile
from export.executorch.int8 import float_choice, quantized_program
from export.image_io import IMAGE, TENSOR, ImageIO, from_images, is_image_file, sample_pixels
from export.job import ExportJob
from export.mixed import FLOAT_CONVS, KEPT_WIDER, selection
from export.optional import require
from export.options import INT8_BUDGET_DB
from export.shuffle_forms import Rank4ShuffleHead

MIN_DYNAMIC_SIDE = 2  # the smallest LR side a --dynamic file takes


def export(
    job: ExportJob, dynamic: bool = False, io: str = TENSOR, int8_budget: float = INT8_BUDGET_DB
) -> Path:
    """The head in ``job.form``'s exit placement with rank-4 pixel shuffles (no rank-6 transpose;
    ``export/shuffle_forms.py``), exported and lowered whole to XNNPACK. ``dynamic``:
    bounded dynamic shapes, any LR height and width up to the export's input size (the largest frame
    the app will feed; ExecuTorch plans memory for that bound). ``io="image"``: uint8 pixels in and
    out (``export/image_io.py``); the conversions at the edges run outside the delegate. int8: the
    fewest activations float for ``int8_budget`` dB of PSNR-Y."""
    image = io == IMAGE
    graph = job.reuse(
        ("rank4", job.form, dynamic),
        lambda: Rank4ShuffleHead(job.head, job.form.exit_at_lr, copy_output=dynamic).eval(),
    )
    net = ImageIO(graph) if image else graph
    metadata = dict(job.metadata)
    if job.precision == "int8":
        choice = job.choice(
            ("executorch-float", job.form, image, int8_budget),
            lambda: float_choice(net, selection(job), int8_budget, image),
        )
        shapes = dynamic_shapes(job.input_size, image) if dynamic else None
        crops = job.calibration_inputs()
        program, floating = quantized_program(
            net, job.input_size, crops, image, choice.wide, shapes, choice.float_weights, job.ranges
        )
        metadata[KEPT_WIDER] = choice.note()
        metadata[FLOAT_CONVS] = floating
    else:
        program = job.reuse(
            ("executorch", job.form, dynamic, image),
            lambda: exported(net, job.input_size, dynamic, image),
        )
    if dynamic:
        h, w = job.input_size
        metadata["dynamic"] = f"{MIN_DYNAMIC_SIDE}x{MIN_DYNAMIC_SIDE} to {h}x{w}"
    job.path.write_bytes(lowered(program, metadata))
    return job.path


def exported(
    net: torch.nn.Module, size: tuple[int, int], dynamic: bool, image: bool = False
) -> torch.export.ExportedProgram:
    """``net`` exported at ``size`` (``image``: on uint8 NHWC pixels), bounded by it if ``dynamic``."""
    sample = (sample_pixels(size) if image else torch.rand(1, 3, *size),)
    shapes = dynamic_shapes(size, image) if dynamic else None
    return torch.export.export(net, sample, dynamic_shapes=shapes)


def dynamic_shapes(size: tuple[int, int], image: bool) -> tuple[dict]:
    """Any LR height and width from ``MIN_DYNAMIC_SIDE`` up to ``size``."""
    h, w = (1, 2) if image else (2, 3)
    dims = {
        axis: torch.export.Dim(name, min=MIN_DYNAMIC_SIDE, max=max(bound, MIN_DYNAMIC_SIDE + 1))
        for axis, name, bound in ((h, "height", size[0]), (w, "width", size[1]))
    }
    return (dims,)


def lowered(program: torch.export.ExportedProgram, metadata: dict, partitioner=None) -> bytes:
    """The program lowered to XNNPACK (or to ``partitioner``'s backend) with the metadata as a
    constant method, as ``.pte`` bytes."""
    exir = require("executorch.exir")
    if partitioner is None:
        partitioner = require(
            "executorch.backends.xnnpack.partition.xnnpack_partitioner"
        ).XnnpackPartitioner()
    document = torch.tensor(list(json.dumps(metadata, sort_keys=True).encode()), dtype=torch.uint8)
    edge = exir.to_edge_transform_and_lower(
        program,
        partitioner=[partitioner],
        constant_methods={"metadata": document},
    )
    return edge.to_executorch().buffer


def _method(path: Path, threads: int | None) -> Callable[[list], list]:
    """``forward`` of the file, loaded from its path: the runtime then owns the file's bytes (a
    program loaded from a Python ``bytes`` that is later freed reads freed memory)."""
    if threads:
        pybindings = require("executorch.extension.pybindings.portable_lib")
        if pybindings._threadpool_get_thread_count() != threads:
            pybindings._unsafe_reset_threadpool(threads)
    runtime = require("executorch.runtime").Runtime.get()
    program = runtime.load_program(str(path))
    method = program.load_method(FORWARD)
    return lambda inputs, _program=program: method.execute(inputs)


def runner(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The file in ExecuTorch's runtime (XNNPACK on CPU); NCHW float32 in and out (an image file's
    pixels converted around it)."""
    forward = _method(path, threads)
    if is_image_file(read_metadata(path)):
        return from_images(lambda pixels: forward([torch.from_numpy(pixels)])[0].numpy())

    def call(lr_nchw: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(lr_nchw, dtype=np.float32))
        return forward([x])[0].numpy()

    return call


def timed_session(path: Path, threads: int, x: np.ndarray):
    forward = _method(path, threads)
    inputs = [torch.from_numpy(np.ascontiguousarray(x))]
    return lambda: forward(inputs)


def read_metadata(path: Path) -> dict:
    return {k: str(v) for k, v in PTEFile.read(path).metadata().items()}


def input_shape(path: Path) -> list[int]:
    return PTEFile.read(path).input_shape()
