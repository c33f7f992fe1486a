"""A ``.tflite`` file whose input height and width the app sets at run time (``--dynamic``).

litert-torch's dynamic-shape conversion fails on this graph (its lowering of the input mean's
broadcast subtraction and of reshapes asserts on unknown sizes), so the file is converted at the
export size and then declared resizable: the input and output carry a ``-1`` height and width in
their shape signatures (what ``Interpreter.resize_tensor_input(..., strict=True)`` checks), and each
strided slice of the channel reorder (``export/tflite/d2s.py``, ``resizable=True``) takes the whole
of the batch, height and width axes by its masks instead of the export size baked into its ends.
Every other op computes its output shape from its inputs when the interpreter allocates tensors.
A graph with a RESHAPE would keep the export size, so one is refused here.
"""

from __future__ import annotations

import numpy as np

from export.tflite.file import TFLiteFile
from toolkit.errors import PcarnError

WHOLE_NHW = 0b0111  # begin and end masks: axes 0-2 (batch, height, width) taken whole


def resizable(data: bytes) -> bytes:
    """The flatbuffer ``data`` with a free input and output height and width."""
    tflite = TFLiteFile.read(data)
    sub = tflite.subgraph
    for name, op in tflite.ops():
        if name == "RESHAPE":
            raise PcarnError("this graph has a RESHAPE, which keeps the export size: it cannot be resized")
        if name == "STRIDED_SLICE":
            strides = tflite.constant(op.inputs[3])
            if strides is None or np.any(strides[:3] != 1):
                raise PcarnError("a strided slice steps over height or width: the graph cannot be resized")
            op.builtinOptions.beginMask |= WHOLE_NHW
            op.builtinOptions.endMask |= WHOLE_NHW
    for index in (*sub.inputs, *sub.outputs):
        tensor = sub.tensors[index]
        signature = np.array(tensor.shape, dtype=np.int32)
        signature[1:3] = -1
        tensor.shapeSignature = signature
    return tflite.pack()


def is_resizable(tflite: TFLiteFile) -> bool:
    """Whether the file's input declares a free height and width."""
    signature = tflite.subgraph.tensors[tflite.subgraph.inputs[0]].shapeSignature
    return signature is not None and len(signature) == 4 and bool(np.all(np.asarray(signature)[1:3] == -1))
