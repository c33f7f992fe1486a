"""TFLite export through litert-torch: NHWC input and output, fp32 or float16 weights.

The NHWC wrapper's edge permutes cancel against the converter's own layout pass, so the file takes
and returns NHWC tensors without TRANSPOSE ops at its edges, and each pixel shuffle becomes one native
DEPTH_TO_SPACE (``export/tflite_d2s.py``). fp16 files store float16 weights
(ai-edge-quantizer's float casting) that are dequantized once when the interpreter loads them.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from export.common import NHWC
from export.image_io import IMAGE, TENSOR, ImageIO, from_images, is_image_file, sample_pixels
from export.job import ExportJob
from export.mixed import FLOAT_CONVS, KEPT_WIDER, selection
from export.optional import require
from export.options import INT8_BUDGET_DB
from export.tflite.d2s import NativeShuffleHead
from export.tflite.file import TFLiteFile
from export.tflite.int8 import float_choice, quantize_tflite
from export.tflite.resizable import is_resizable, resizable


def export(
    job: ExportJob, dynamic: bool = False, io: str = TENSOR, int8_budget: float = INT8_BUDGET_DB
) -> Path:
    """The head in ``job.form`` with TFLite's native shuffle (the staged loop of ``export/graph.py``'s
    graphs, DCR channel order), NHWC in and out; ``dynamic``: resizable at run time
    (``export/tflite/resizable.py``); ``io="image"``: uint8 pixels in and out (``export/image_io.py``);
    int8: the fewest activations float for ``int8_budget`` dB of PSNR-Y (``export/pt2e_mixed.py``)."""
    exit_at_lr = job.form.exit_at_lr
    image = io == IMAGE
    graph = NativeShuffleHead(job.head, exit_at_lr=exit_at_lr, resizable=dynamic)
    head = (ImageIO(graph) if image else NHWC(graph)).eval()
    key = ("tflite", exit_at_lr, dynamic, image)
    metadata = dict(job.metadata)
    if job.precision == "int8":
        choice = job.choice(
            ("tflite-float", exit_at_lr, dynamic, image, int8_budget),
            lambda: float_choice(head, selection(job), int8_budget, image),
        )
        crops = job.calibration_inputs()
        data, float_convs = quantize_tflite(
            head, job.input_size, crops, image, choice.wide, choice.float_weights, job.ranges
        )
        metadata[KEPT_WIDER] = choice.note()
        metadata[FLOAT_CONVS] = float_convs
        if not image and not _float_output(data):
            metadata["output_range"] = "int8: dequantize with the output tensor's scale and zero point"
    elif job.precision == "fp32":
        data = job.reuse(key, lambda: converted_fp32(head, job.input_size, image))
    else:
        fp32 = job.reuse(key, lambda: converted_fp32(head, job.input_size, image))
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "fp32.tflite").write_bytes(fp32)
            data = _float16_weights(Path(tmp) / "fp32.tflite", Path(tmp) / "fp16.tflite")
    if dynamic:
        data = resizable(data)
        metadata["dynamic"] = "any height and width: resize the input tensor before allocating"
    job.path.write_bytes(TFLiteFile.read(data).with_metadata(metadata))
    return job.path


def _float_output(data: bytes) -> bool:
    tflite = TFLiteFile.read(data)
    return tflite.subgraph.tensors[tflite.subgraph.outputs[0]].type == tflite.schema.TensorType.FLOAT32


def converted_fp32(head: torch.nn.Module, input_size: tuple[int, int], image: bool = False) -> bytes:
    """litert-torch's fp32 flatbuffer of the NHWC head (``image``: taking uint8 pixels): what fp32
    and fp16 start from."""
    litert_torch = require("litert_torch")
    sample = sample_pixels(input_size) if image else torch.rand(1, *input_size, 3)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        edge = litert_torch.convert(head, (sample,))
    with tempfile.TemporaryDirectory() as tmp:
        edge.export(str(Path(tmp) / "fp32.tflite"))
        return (Path(tmp) / "fp32.tflite").read_bytes()


def plain(net: torch.nn.Module, path: Path, shape: tuple[int, ...]) -> None:
    """Any NCHW module as a plain fp32 NHWC ``.tflite`` file: models timed beside ours."""
    litert_torch = require("litert_torch")
    n, c, h, w = shape
    litert_torch.convert(NHWC(net).eval(), (torch.rand(n, h, w, c),)).export(str(path))


def _float16_weights(src: Path, dst: Path) -> bytes:
    quantizer = require("ai_edge_quantizer.quantizer")
    recipe = require("ai_edge_quantizer.recipe")
    manager = require("ai_edge_quantizer.recipe_manager").RecipeManager()
    manager.add_weight_only_config(
        regex=".*",
        operation_name=recipe.TFLOperationName.ALL_SUPPORTED,
        num_bits=16,
        algorithm_key=recipe.AlgorithmName.FLOAT_CASTING,
    )
    q = quantizer.Quantizer(str(src))
    q.load_quantization_recipe(manager.get_quantization_recipe())
    with contextlib.redirect_stdout(io.StringIO()):
        q.quantize().export_model(str(dst), overwrite=True)
    return dst.read_bytes()


def read_metadata(path: Path) -> dict:
    return TFLiteFile.read(Path(path)).metadata()


def interpreter(content: bytes, threads: int | None = None, x: np.ndarray | None = None):
    """A LiteRT interpreter (XNNPACK on CPU) over a file's bytes, tensors allocated; ``x`` (or a
    fixed-seed random tensor) set as every input."""
    module = require("ai_edge_litert.interpreter")
    runner = module.Interpreter(model_content=content, num_threads=threads)
    if x is not None:
        _fit(runner, x.shape)
    runner.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in runner.get_input_details():
        value = x if x is not None else rng.random(detail["shape"], dtype=np.float32)
        runner.set_tensor(detail["index"], _to_tensor(value, detail))
    return runner


def runner(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The file in one LiteRT interpreter (XNNPACK on CPU), NCHW float32 in and out like the other
    formats; an integer input or output (int8 files) is (de)quantized with its own parameters."""
    content = Path(path).read_bytes()
    interp = interpreter(content, threads)
    source, sink = interp.get_input_details()[0], interp.get_output_details()[0]

    def invoke(x: np.ndarray) -> np.ndarray:
        if _fit(interp, x.shape):
            interp.allocate_tensors()
        interp.set_tensor(source["index"], x)
        interp.invoke()
        return interp.get_tensor(sink["index"])

    if is_image_file(TFLiteFile.read(content).metadata()):
        return from_images(invoke)

    def call(lr_nchw: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(lr_nchw.transpose(0, 2, 3, 1), dtype=np.float32)
        return _from_tensor(invoke(_to_tensor(x, source)), sink).transpose(0, 3, 1, 2)

    return call


def _fit(interp, shape: tuple[int, ...]) -> bool:
    """Resize the input to ``shape`` if it differs (a ``--dynamic`` file; others refuse in
    ``resize_tensor_input``); True when tensors must be allocated again."""
    detail = interp.get_input_details()[0]
    if tuple(detail["shape"]) == tuple(shape):
        return False
    interp.resize_tensor_input(detail["index"], list(shape), strict=True)
    return True


def _to_tensor(x: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if detail["dtype"] == np.float32 or not scale:
        return x.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.rint(x / scale) + zero, info.min, info.max).astype(detail["dtype"])


def _from_tensor(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if y.dtype == np.float32 or not scale:
        return y.astype(np.float32)
    return (y.astype(np.float32) - zero) * np.float32(scale)


def timed_session(path: Path, threads: int, x: np.ndarray):
    return interpreter(Path(path).read_bytes(), threads, x).invoke


def input_shape(path: Path) -> list[int]:
    """NHWC; 0 for the height and width of a ``--dynamic`` file."""
    tflite = TFLiteFile.read(Path(path))
    shape = [int(d) for d in tflite.subgraph.tensors[tflite.subgraph.inputs[0]].shape]
    return [shape[0], 0, 0, shape[3]] if is_resizable(tflite) else shape
