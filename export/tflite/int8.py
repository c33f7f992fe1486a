"""Full-integer TFLite graphs through litert-torch's PT2E quantizer.

Per-channel symmetric int8 weights and int8 activations (the XNNPACK-style configuration), with the
tied-unit and fused-ReLU annotations of ``export/pt2e_annotate.py`` and two of LiteRT's own:

- each input of a cascade's concatenation keeps its own range (the converter requantizes);
- byte-moving ops (our native depth-to-space, the channel reorder before it, the layout permutes)
  share their input's quantization parameters, so no dequantize/quantize pair is left around them
  and DEPTH_TO_SPACE runs on int8.

The float input is quantized inside the graph; the output is int8 with its scale and zero point
(``export.tflite.exporter.runner`` dequantizes it). Activations named in ``float_tensors`` stay float
(``export/pt2e_mixed.py`` chooses them for a PSNR-Y budget).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
import torch

from export.image_io import from_pixels, sample_pixels, to_pixels
from export.kept_ranges import Ranges
from export.mixed import Selection, WideChoice
from export.optional import require
from export.pt2e_annotate import (
    annotate_convs,
    calibrated,
    conv_outputs,
    float_weight_convs,
    layout_ops,
    with_min_max_ranges,
)
from export.pt2e_mixed import check_names, choose_float, float_convs, keep_float


def _byte_moving_ops() -> set:
    return layout_ops() | {torch.ops.pcarn_tfl.depth_to_space.default, torch.ops.aten.clone.default}


def _annotation(node: torch.fx.Node):
    return node.meta.get("quantization_annotation")


def _quantizer(float_tensors: tuple[str, ...] = (), float_weights: tuple[str, ...] = ()):
    pt2e = require("litert_torch.quantize.pt2e_quantizer")
    spec = require("torchao.quantization.pt2e.quantizer")

    class PcarnQuantizer(pt2e.PT2EQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            annotate_convs(model, self.global_config)
            self._annotate_concats(model)
            model = super().annotate(model)
            float_weight_convs(model, float_weights)
            # LiteRT's converter makes a conv between int8 tensors an int8 conv, weights and all
            floats = float_tensors + conv_outputs(model, float_weights)
            keep_float(model, floats, _byte_moving_ops())
            self._share_byte_moving_ops(model)
            return model

        def _annotate_concats(self, model: torch.fx.GraphModule) -> None:
            """Each input of a cascade's concatenation keeps its own range: the stock annotator
            makes every input share the first one's, which chains the whole cascade into one
            scale set by its widest tensor."""
            config = self.global_config
            for node in model.graph.nodes:
                if node.op != "call_function" or node.target != torch.ops.aten.cat.default:
                    continue
                inputs = {source: config.input_activation for source in node.args[0]}
                node.meta["quantization_annotation"] = spec.QuantizationAnnotation(
                    input_qspec_map=inputs, output_qspec=config.output_activation, _annotated=True
                )

        def _share_byte_moving_ops(self, model: torch.fx.GraphModule) -> None:
            targets = _byte_moving_ops()
            for node in model.graph.nodes:
                if node.op != "call_function" or node.target not in targets or _annotation(node):
                    continue
                source = node.args[0]
                if not isinstance(source, torch.fx.Node):
                    continue
                annotation = _annotation(source)
                if annotation is None or annotation.output_qspec is None:
                    continue  # e.g. the float input's layout permute
                shared = spec.SharedQuantizationSpec(source)
                node.meta["quantization_annotation"] = spec.QuantizationAnnotation(
                    input_qspec_map={source: shared}, output_qspec=shared, _annotated=True
                )

    config = with_min_max_ranges(pt2e.get_symmetric_quantization_config(is_per_channel=True))
    return PcarnQuantizer().set_global(config)


def _feed(crop: np.ndarray, image: bool) -> torch.Tensor:
    """An HxWx3 float crop as the NHWC head's input: float, or ``image``: uint8 pixels."""
    x = np.ascontiguousarray(crop)[None]
    return torch.from_numpy(to_pixels(x.transpose(0, 3, 1, 2)) if image else x)


def _sample(size: tuple[int, int], image: bool) -> tuple[torch.Tensor]:
    return (sample_pixels(size) if image else torch.rand(1, *size, 3),)


def _converted(
    head_nhwc: torch.nn.Module,
    input_size: tuple[int, int],
    inputs: list[np.ndarray],
    image: bool,
    float_tensors: tuple[str, ...],
    float_weights: tuple[str, ...] = (),
    ranges: Ranges | None = None,
):
    """The head calibrated on ``inputs`` (or its ranges recalled from ``ranges``) and converted
    (``export/pt2e_annotate.py``), its quantizer and its sample input."""
    sample = _sample(input_size, image)
    quantizer = _quantizer(float_tensors, float_weights)
    feeds = [_feed(crop, image) for crop in inputs]
    return calibrated(head_nhwc, sample, quantizer, feeds, ranges=ranges), quantizer, sample


def quantize_tflite(
    head_nhwc: torch.nn.Module,
    input_size: tuple[int, int],
    inputs: list[np.ndarray],
    image: bool = False,
    float_tensors: tuple[str, ...] = (),
    float_weights: tuple[str, ...] = (),
    ranges: Ranges | None = None,
) -> tuple[bytes, int]:
    """The NHWC head as a full-integer flatbuffer, activations calibrated on ``inputs`` (HxWx3 crops);
    ``image``: the head takes uint8 pixels (``export/image_io.py``), calibrated on the crops' pixels;
    ``float_tensors``: activations (node names of the exported graph) left float, and the
    ``float_weights`` convs; with the number of convs that run in float (``export/pt2e_mixed.py``'s
    float_convs)."""
    litert_torch = require("litert_torch")
    quant_config = require("litert_torch.quantize.quant_config")
    converted, quantizer, sample = _converted(
        head_nhwc, input_size, inputs, image, float_tensors, float_weights, ranges
    )
    check_names(converted, float_tensors + float_weights)
    floating = float_convs(converted)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        edge = litert_torch.convert(
            converted, sample, quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer)
        )
    with tempfile.TemporaryDirectory() as tmp:
        edge.export(str(Path(tmp) / "int8.tflite"))
        return (Path(tmp) / "int8.tflite").read_bytes(), floating


def float_choice(
    head_nhwc: torch.nn.Module, chosen_on: Selection, budget_db: float, image: bool
) -> WideChoice:
    """The fewest activations of the head to leave float for ``budget_db`` dB of PSNR-Y, measured on
    a small calibrated copy of its graph (``export/pt2e_mixed.py``)."""

    def unfeed(y: torch.Tensor) -> np.ndarray:
        return from_pixels(y.numpy())[0].transpose(1, 2, 0) if image else y[0].numpy()

    def feed(crop: np.ndarray) -> torch.Tensor:
        return _feed(crop, image)

    sample, moving = _sample(chosen_on.size, image), _byte_moving_ops()
    return choose_float(head_nhwc, _quantizer, sample, chosen_on, budget_db, moving, feed, unfeed)
