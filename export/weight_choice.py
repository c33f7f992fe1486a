"""Which conv weights stay float, for quantizers that take a PyTorch graph (PT2E, coremltools).

Per-channel int8 weights alone can cost more than a head's int8 budget (``export/mixed.py``), so the
weights are chosen before the activations: every candidate is the graph with some weights rounded
to int8 and everything else float, judged by ``export/mixed.py``'s rule on the selection crops.
Only the names of what is rounded differ between quantizers: node names of an exported graph for
PT2E, module names for coremltools' per-module configs.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Sequence

import numpy as np
import torch

from export.mixed import WEIGHT_SHARE, Selection, choose_kept, y_plane
from toolkit.int8_rounding import PT2E_LEVELS, int8_round_trip

KEPT_AS = "float"


def choose_rounded(
    net: torch.nn.Module,
    calls: dict[str, list[str]],
    reference: Callable[[torch.Tensor], torch.Tensor],
    chosen_on: Selection,
    budget_db: float,
    feed: Callable[[np.ndarray], torch.Tensor],
    unfeed: Callable[[torch.Tensor], np.ndarray],
    levels: tuple[int, int] = PT2E_LEVELS,
) -> tuple[str, ...]:
    """The convs to keep float for int8 weights alone to cost at most ``WEIGHT_SHARE`` of the
    selection share of ``budget_db`` (the crops' mean cost). ``calls`` maps each weight (an attribute
    path of ``net``, which is rounded in place, so pass a copy) to the names of the convs that read it;
    every call of a tied weight is chosen together. ``reference`` is the fp32 head; ``levels``: the
    quantizer's integer weight range (``toolkit/int8_rounding.py``)."""
    weights = {name: operator.attrgetter(name)(net) for name in calls}
    original = {name: w.detach().clone() for name, w in weights.items()}
    rounded = {name: int8_round_trip(w, levels) for name, w in original.items()}
    inputs = [feed(lr) for lr, _ in chosen_on.pairs]

    def run(graph: Callable[[torch.Tensor], torch.Tensor]) -> list[np.ndarray]:
        with torch.no_grad():
            return [y_plane(unfeed(graph(x))) for x in inputs]

    def outputs(narrow: Sequence[str]) -> list[np.ndarray]:
        with torch.no_grad():
            for name, w in weights.items():
                w.copy_(rounded[name] if name in narrow else original[name])
        return run(net)

    hr = [h for _, h in chosen_on.pairs]
    budget = WEIGHT_SHARE * budget_db
    chosen = choose_kept(list(calls), outputs, run(reference), hr, budget, chosen_on.border, KEPT_AS).wide
    return tuple(conv for name in chosen for conv in calls[name])


def choose_float_modules(
    head: torch.nn.Module,
    chosen_on: Selection,
    budget_db: float,
    feed: Callable[[np.ndarray], torch.Tensor],
    unfeed: Callable[[torch.Tensor], np.ndarray],
    levels: tuple[int, int] = PT2E_LEVELS,
) -> tuple[str, ...]:
    """``choose_rounded`` by module name (every ``Conv2d`` of ``head``; a module called more than
    once is one candidate), for quantizers configured per module."""
    net = copy.deepcopy(head).eval()
    calls = {f"{name}.weight": [name] for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)}
    return choose_rounded(net, calls, head.eval(), chosen_on, budget_db, feed, unfeed, levels)
