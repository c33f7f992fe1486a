"""Optional exporter dependencies: a missing one becomes one clear error naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from toolkit.errors import PcarnError

EXTRAS = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxsim": "onnx",
    "coremltools": "coreml",
    "litert_torch": "tflite",
    "ai_edge_litert": "tflite",
    "executorch": "executorch",
}


def require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.split(".")[0], "all")
        raise PcarnError(
            f"{module} is not installed ({exc}); install it with: pip install 'pcarn-toolkit[{extra}]'"
        ) from None
