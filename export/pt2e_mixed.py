"""Mixed precision for PT2E-quantized graphs (TFLite through litert-torch, ExecuTorch through
XNNPACK's quantizer): int8 files whose noisiest activations stay float.

Runtimes that take these files have no 16-bit activations for every op (LiteRT's 16x8 mode is
all-or-nothing), so an activation kept wide is float: its producer writes float and its consumers
read float. PT2E's converted graph runs in PyTorch with explicit quantize/dequantize pairs, so every
candidate is that one graph with some pairs bypassed, and the choice is ``export/mixed.py``'s. Some
tensors are chosen together (``tied``): a byte-moving op (reshape, permute, depth-to-space) with its
input, a concatenation with its inputs. Conv weights whose int8 rounding alone costs too much are
chosen first (``choose_float_weights``); their convs run float.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from export.mixed import Selection, WideChoice, choose_kept, y_plane
from export.pt2e_annotate import RELU, calibrated
from export.weight_choice import choose_rounded

KEPT_AS = "float"


def _is_quantize(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and str(node.target).startswith(
        "quantized_decomposed.quantize_per_tensor"
    )


def is_dequantize(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and str(node.target).startswith(
        "quantized_decomposed.dequantize_per_tensor"
    )


def _read(node: torch.fx.Node) -> torch.fx.Node:
    """The tensor an input edge carries: in a converted graph, read through its dequantize and
    quantize nodes."""
    if is_dequantize(node) and isinstance(node.args[0], torch.fx.Node) and _is_quantize(node.args[0]):
        return node.args[0].args[0]
    return node


def choose_float_weights(
    head: torch.nn.Module,
    sample: tuple,
    chosen_on: Selection,
    budget_db: float,
    feed: Callable[[np.ndarray], torch.Tensor],
    unfeed: Callable[[torch.Tensor], np.ndarray],
) -> tuple[str, ...]:
    """The convs (node names of the exported graph, every call of a tied weight) to keep float
    (``export/weight_choice.py``). The candidates round an exported copy's weights: an exported
    module shares its parameters with ``head``."""
    graph = torch.export.export(copy.deepcopy(head).eval(), sample).module()
    calls: dict[str, list[str]] = {}  # weight attribute -> the convs that read it
    for node in graph.graph.nodes:
        conv = node.op == "call_function" and node.target == torch.ops.aten.conv2d.default
        if conv and node.args[1].op == "get_attr":
            calls.setdefault(node.args[1].target, []).append(node.name)
    return choose_rounded(graph, calls, head, chosen_on, budget_db, feed, unfeed)


def check_names(converted: torch.fx.GraphModule, names: Iterable[str]) -> None:
    """Refuse a choice made on another copy of the graph that named a tensor this one lacks."""
    missing = sorted(set(names) - {n.name for n in converted.graph.nodes})
    if missing:
        raise ValueError(f"mixed precision chose {missing[0]!r}, which this graph does not have")


def float_convs(converted: torch.fx.GraphModule) -> int:
    """How many convs of ``converted`` a runtime runs in float: those that read a float activation
    and those whose output (after a fused ReLU) stays float, since an integer conv writes int8."""

    def quantized_output(node: torch.fx.Node) -> bool:
        users = list(node.users)
        if len(users) == 1 and users[0].target in RELU:
            users = list(users[0].users)
        return bool(users) and all(_is_quantize(u) for u in users)

    return sum(
        1
        for n in converted.graph.nodes
        if n.op == "call_function"
        and n.target == torch.ops.aten.conv2d.default
        and not (is_dequantize(n.args[0]) and _dequantized_weight(n.args[1]) and quantized_output(n))
    )


def _dequantized_weight(node) -> bool:
    return isinstance(node, torch.fx.Node) and str(node.target).startswith("quantized_decomposed.dequantize")


def tied(node: torch.fx.Node, byte_moving: set) -> list[torch.fx.Node]:
    """The tensors whose precision ``node``'s output must share: a byte-moving op's input (it
    shares its quantization parameters) and every input of a concatenation (LiteRT's converter
    and XNNPACK give an int8 concatenation one scale for all its inputs, so a float concatenation
    of int8 inputs would have its producers' ranges rewritten)."""
    if node.op != "call_function" or not node.args:
        return []
    if node.target == torch.ops.aten.cat.default:
        sources = node.args[0]
    elif node.target in byte_moving:
        sources = [node.args[0]]
    else:
        return []
    return [_read(s) for s in sources if isinstance(s, torch.fx.Node)]


def groups(graph: torch.fx.Graph, byte_moving: set) -> dict[str, str]:
    """Tensor name -> the name of its group (tensors whose precision is chosen together)."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.get(name, name) != name:
            name = parent[name]
        return name

    for node in graph.nodes:
        for source in tied(node, byte_moving):
            parent[root(source.name)] = root(node.name)
    return {node.name: root(node.name) for node in graph.nodes}


def float_closure(graph: torch.fx.Graph, names: Iterable[str], byte_moving: set) -> set[str]:
    """``names`` and every tensor grouped with one of them."""
    group = groups(graph, byte_moving)
    chosen = {group.get(name, name) for name in names}
    return {name for name, root in group.items() if root in chosen}


def activations(converted: torch.fx.GraphModule, byte_moving: set) -> dict[str, list[str]]:
    """The candidates: each group of quantized activations of ``converted``, by its name."""
    group = groups(converted.graph, byte_moving)
    out: dict[str, list[str]] = {}
    for quantize in [n for n in converted.graph.nodes if _is_quantize(n)]:
        name = quantize.args[0].name
        out.setdefault(group[name], []).append(name)
    return out


def with_float(
    converted: torch.fx.GraphModule, names: Iterable[str], byte_moving: set
) -> torch.fx.GraphModule:
    """A copy of ``converted`` whose ``names`` activations (and their followers) skip their
    quantize/dequantize pairs."""
    model = copy.deepcopy(converted)
    closed = float_closure(model.graph, names, byte_moving)
    for quantize in [n for n in model.graph.nodes if _is_quantize(n)]:
        if quantize.args[0].name not in closed:
            continue
        for dequantize in [u for u in quantize.users if is_dequantize(u)]:
            dequantize.replace_all_uses_with(quantize.args[0])
    model.graph.eliminate_dead_code()
    model.recompile()
    return model


def keep_float(model: torch.fx.GraphModule, names: Iterable[str], byte_moving: set) -> None:
    """Strip the quantization annotations that would make ``names`` (and their followers) 8-bit:
    the producer's output spec and every consumer's input spec; run after annotation."""
    closed = float_closure(model.graph, names, byte_moving)
    for node in model.graph.nodes:
        annotation = node.meta.get("quantization_annotation")
        if annotation is None:
            continue
        if node.name in closed:
            annotation.output_qspec = None
        for source in [s for s in annotation.input_qspec_map if s.name in closed]:
            del annotation.input_qspec_map[source]


def choose_float(
    head: torch.nn.Module,
    quantizer: Callable[..., object],
    sample: tuple,
    chosen_on: Selection,
    budget_db: float,
    byte_moving: set,
    feed: Callable[[np.ndarray], torch.Tensor],
    unfeed: Callable[[torch.Tensor], np.ndarray],
) -> WideChoice:
    """The convs of ``head`` whose weights stay float, then the activations that must stay float,
    for the predicted cost on the selection pairs to fit the budget, measured on a copy calibrated
    by ``quantizer(float_weights=...)`` on the selection's crops at its size (``sample``); ``feed``
    turns an LR crop into the graph's input, ``unfeed`` its output into an HxWx3 image in [0, 1]."""
    head = head.eval()
    weights = choose_float_weights(head, sample, chosen_on, budget_db, feed, unfeed)
    crops = [feed(crop) for crop in chosen_on.crops]
    converted = calibrated(head, sample, quantizer(float_weights=weights), crops)
    pairs = chosen_on.pairs
    candidates = activations(converted, byte_moving)
    names = list(candidates)
    inputs = [feed(lr) for lr, _ in pairs]

    def run(graph: Callable[[torch.Tensor], torch.Tensor]) -> list[np.ndarray]:
        with torch.no_grad():
            return [y_plane(unfeed(graph(x))) for x in inputs]

    def outputs(narrow: Sequence[str]) -> list[np.ndarray]:
        narrowed = set(narrow)
        return run(with_float(converted, [n for n in names if n not in narrowed], byte_moving))

    hr = [h for _, h in pairs]
    choice = choose_kept(names, outputs, run(head), hr, budget_db, chosen_on.border, KEPT_AS)
    members = tuple(member for name in choice.wide for member in candidates[name])
    activations_count = sum(map(len, candidates.values()))
    return dataclasses.replace(choice, wide=members, activations=activations_count, float_weights=weights)
