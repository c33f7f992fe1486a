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
from pathlib import Path

import numpy as np
import torch

from export.common import DeployHead
from export.optional import require
from export.tflite_d2s import NHWCNativeHead

NAME = "tflite"
SUFFIX = ".tflite"
LAYOUT = "NHWC"


def export(head: DeployHead, path: Path, input_size: tuple[int, int], precision: str, metadata: dict) -> Path:
    litert_torch = require("litert_torch")
    sample = torch.rand(1, *input_size, 3)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        edge = litert_torch.convert(NHWCNativeHead(head).eval(), (sample,))
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.tflite"
        edge.export(str(fp32))
        data = fp32.read_bytes() if precision == "fp32" else _float16_weights(fp32, Path(tmp) / "fp16.tflite")
    path.write_bytes(_with_metadata(data, metadata))
    return path


def export_plain(head: DeployHead, path: Path, input_size: tuple[int, int]) -> Path:
    """fp32 file with native depth-to-space and no metadata, for timing."""
    litert_torch = require("litert_torch")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        litert_torch.convert(NHWCNativeHead(head).eval(), (torch.rand(1, *input_size, 3),)).export(str(path))
    return path


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


def _with_metadata(data: bytes, metadata: dict) -> bytes:
    """Add each key as a named entry of the model's metadata table (TFLite's native slot)."""
    import json

    schema = require("ai_edge_litert.schema_py_generated")
    flatbuffers = require("flatbuffers")
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for buf in model.buffers:
        # The converter appends large constants after the flatbuffer and points at them by offset;
        # inline them so that repacking cannot leave dangling offsets.
        if getattr(buf, "offset", 0) and buf.offset > 1:
            buf.data = np.frombuffer(data[buf.offset : buf.offset + buf.size], dtype=np.uint8)
            buf.offset, buf.size = 0, 0
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = "pcarn_toolkit"
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_metadata(path: Path) -> dict:
    import json

    schema = require("ai_edge_litert.schema_py_generated")
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == "pcarn_toolkit":
            return json.loads(bytes(model.buffers[entry.buffer].data).decode())
    return {}


def run(path: Path, lr_nchw: np.ndarray) -> np.ndarray:
    """Run in the LiteRT interpreter (XNNPACK on CPU); NCHW in and out for a uniform parity API."""
    interpreter_mod = require("ai_edge_litert.interpreter")
    interpreter = interpreter_mod.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    x = np.ascontiguousarray(lr_nchw.transpose(0, 2, 3, 1).astype(np.float32))
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return y.transpose(0, 3, 1, 2)
