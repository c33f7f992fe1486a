"""Core ML export: an ML Program (.mlpackage) for iOS 15+, fp32 or fp16 compute precision.

``image_input=True`` declares an RGB ``ImageType`` input scaled by 1/255, which is what an app hands
over from a ``CVPixelBuffer``. Core ML cannot run on Linux; there, parity checks the weights instead.
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path

import numpy as np
import torch

from export.common import DeployHead
from export.optional import require

NAME = "coreml"
SUFFIX = ".mlpackage"
LAYOUT = "NCHW"


def export(
    head: DeployHead,
    path: Path,
    input_size: tuple[int, int],
    precision: str,
    metadata: dict,
    image_input: bool = False,
) -> Path:
    ct = require("coremltools")
    sample = torch.rand(1, 3, *input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(head.eval(), sample)
    shape = (1, 3, *input_size)
    if image_input:
        inputs = [ct.ImageType(name="lr", shape=shape, scale=1 / 255.0, color_layout=ct.colorlayout.RGB)]
    else:
        inputs = [ct.TensorType(name="lr", shape=shape, dtype=np.float32)]
    compute = ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32
    model = ct.convert(
        traced,
        inputs=inputs,
        outputs=[ct.TensorType(name="sr")],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS15,
        compute_precision=compute,
        skip_model_load=True,
    )
    model.author = "pcarn-toolkit"
    model.short_description = f"PCARN {metadata['variant']} x{metadata['scale']} super-resolution"
    model.user_defined_metadata.update({k: str(v) for k, v in metadata.items()})
    model.save(str(path))
    return path


def can_run() -> tuple[bool, str]:
    if platform.system() != "Darwin":
        return False, "Core ML runs only on macOS; weights and op sequence were checked instead"
    return True, ""


def run(path: Path, lr_nchw: np.ndarray) -> np.ndarray:
    ct = require("coremltools")
    model = ct.models.MLModel(str(path))
    return np.asarray(model.predict({"lr": lr_nchw.astype(np.float32)})["sr"])
