"""Mixed precision for Core ML int8: the costliest conv weights, then the noisiest activations, stay
float, as in TFLite and ExecuTorch.

A Core ML int8 program is converted from the calibrated PyTorch graph (``export/coreml/int8.py``),
which quantizes each activation with an explicit ``quantize_per_tensor`` / ``dequantize`` pair. The
candidates of the choice are that graph with some pairs bypassed, so the rule is ``export/mixed.py``'s
(measured on the selection crops, never on the photos costs are reported on); a conv that reads a
float activation runs in float16 on device, its weights still int8. Plain W8A8 costs PCARN-M x2
+0.92 dB PSNR-Y on held-out photos (``benchmarks/coreml_int8.py``), far over the budget.

Weights come first (``export/weight_choice.py``): int8 weights alone cost PCARN-M x2 more than the
selection share, and with every weight int8 no activation could be left 8-bit. A conv whose weights
stay float is left out of quantization (``module_name_configs``), which also leaves float the
activations only it quantized.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from export.mixed import Selection, WideChoice, choose_kept, y_plane

KEPT_AS = "float"


def feed(crop: np.ndarray) -> torch.Tensor:
    """An HxWx3 crop as the head's NCHW batch of one."""
    return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None]


def unfeed(y: torch.Tensor) -> np.ndarray:
    """The head's NCHW output as an HxWx3 image."""
    return y[0].permute(1, 2, 0).numpy()


def _is_quantize(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and node.target is torch.quantize_per_tensor


def _is_dequantize(node: torch.fx.Node) -> bool:
    return node.op == "call_method" and node.target == "dequantize"


def _quantized(graph: torch.fx.GraphModule) -> list[torch.fx.Node]:
    """The nodes whose output the calibrated graph quantizes."""
    return [n.args[0] for n in graph.graph.nodes if _is_quantize(n) and isinstance(n.args[0], torch.fx.Node)]


def activations(graph: torch.fx.GraphModule) -> list[str]:
    """The quantized activations of the calibrated graph, by the name of the node that makes them
    (constants such as the input mean excepted)."""
    return [node.name for node in _quantized(graph) if node.op != "get_attr"]


def constants(graph: torch.fx.GraphModule) -> list[str]:
    """The quantized constants of the calibrated graph (the input mean): always left float, since
    the quantizer rounds the mean to its own 8-bit grid (PCARN-M: up to 0.0009, a shift of the whole
    picture that cost more than the int8 weights)."""
    return [node.name for node in _quantized(graph) if node.op == "get_attr"]


def with_float(graph: torch.fx.GraphModule, names: Iterable[str]) -> torch.fx.GraphModule:
    """A copy of ``graph`` whose ``names`` activations skip their quantize/dequantize pairs."""
    model = copy.deepcopy(graph)
    kept = set(names)
    for quantize in [n for n in model.graph.nodes if _is_quantize(n)]:
        if isinstance(quantize.args[0], torch.fx.Node) and quantize.args[0].name in kept:
            for dequantize in [u for u in quantize.users if _is_dequantize(u)]:
                dequantize.replace_all_uses_with(quantize.args[0])
    model.graph.eliminate_dead_code()
    model.recompile()
    return model


def float_convs(graph: torch.fx.GraphModule) -> int:
    """How many convs of ``graph`` run in float on device: those that read a float activation and
    those whose weights stayed float (left out of quantization, a plain ``nn.Conv2d``)."""

    def conv_of(module: torch.nn.Module) -> torch.nn.Module:  # a conv, or a conv fused with its ReLU
        return module[0] if isinstance(module, torch.nn.Sequential) and len(module) else module

    def int8_weights(conv: torch.nn.Module) -> bool:  # the quantizer's reference conv keeps a qscheme
        return hasattr(conv, "weight_qscheme")

    nodes = [n for n in graph.graph.nodes if n.op == "call_module"]
    convs = [(n, conv_of(graph.get_submodule(n.target))) for n in nodes]
    convs = [(n, conv) for n, conv in convs if isinstance(conv, torch.nn.Conv2d)]
    return sum(1 for n, conv in convs if not (_is_dequantize(n.args[0]) and int8_weights(conv)))


def float_choice(
    calibrated: torch.fx.GraphModule, head: torch.nn.Module, chosen_on: Selection, budget_db: float
) -> WideChoice:
    """The fewest activations of ``calibrated`` (the head's int8 graph, calibrated on the selection
    crops at their size) to leave float for the predicted cost on the selection pairs to fit
    ``budget_db``."""
    names = activations(calibrated)
    inputs = [feed(lr) for lr, _ in chosen_on.pairs]

    def run(graph) -> list[np.ndarray]:
        with torch.no_grad():
            return [y_plane(unfeed(graph(x))) for x in inputs]

    def outputs(narrow: Sequence[str]) -> list[np.ndarray]:
        narrowed = set(narrow)
        return run(with_float(calibrated, [n for n in names if n not in narrowed]))

    hr = [h for _, h in chosen_on.pairs]
    choice = choose_kept(names, outputs, run(head.eval()), hr, budget_db, chosen_on.border, KEPT_AS)
    return dataclasses.replace(choice, activations=len(names))
