"""Calibration as data: the activation ranges an int8 export measured, kept so a later run restores
them instead of measuring again.

Calibration runs every crop through an observed graph at the file's full input size; with the
mixed-precision choice recalled (``export/choice_store.py``) it is most of what is left of an int8
export (pcarn-m x2 at 720p: 49 s in ONNX Runtime, 53 s in PT2E, 85 s in coremltools, profiled
beside another export). The ranges are a pure function of the observed graph and the crops, so the
store files them under a digest of both, and a restored graph holds the same numbers as a calibrated
one: the same file. In a PyTorch graph the activation observers' state is kept; observers of
constants (weights, the folded output mean) are shown those constants again, which is cheap and exact
(the constants are in the digest).
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Sequence

import numpy as np
import torch

from toolkit.errors import PcarnError

# recall(key, measure): the ranges filed under ``key``, else ``measure()``'s (and filed)
Ranges = Callable[[tuple, Callable[[], dict]], dict]
_PLAIN = (bool, int, float, str, torch.dtype, torch.qscheme)


def arrays_digest(arrays: Sequence[np.ndarray | torch.Tensor]) -> str:
    """sha256 of the arrays' shapes, dtypes and bytes, in order: what a graph was calibrated on."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a.numpy() if isinstance(a, torch.Tensor) else a)
        digest.update(f"{a.shape}{a.dtype}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def graph_digest(prepared: torch.fx.GraphModule) -> str:
    """sha256 of an observed graph before calibration: its code, every module's type and settings,
    and every parameter and buffer (the weights and the observers' initial state)."""
    digest = hashlib.sha256(prepared.code.encode())
    for name, module in prepared.named_modules():
        settings = sorted((k, repr(v)) for k, v in vars(module).items() if isinstance(v, _PLAIN))
        digest.update(f"{name}:{type(module).__qualname__}:{settings}".encode())
    for name, tensor in prepared.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(
            tensor.detach().reshape(-1).clone().view(torch.uint8).numpy().tobytes()
        )  # a copy: numpy() would pin the buffer
    return digest.hexdigest()


def calibrate(
    prepared: torch.fx.GraphModule, inputs: Sequence[torch.Tensor], ranges: Ranges | None = None
) -> None:
    """Run ``prepared`` (a graph with observers) on every input, or, where ``ranges`` holds what an
    earlier run measured on the same graph and inputs, restore that."""

    def measure() -> dict:
        with torch.no_grad():
            for x in inputs:
                prepared(x)
        return _activation_state(prepared)

    if ranges is None:
        measure()
        return
    stored = ranges(("observers", graph_digest(prepared), arrays_digest(inputs)), measure)
    _restore(prepared, stored)


def _is_observer(module: torch.nn.Module) -> bool:
    from torch.ao.quantization import FakeQuantizeBase, ObserverBase

    kinds = [FakeQuantizeBase, ObserverBase]
    try:  # PT2E's observers are torchao's own classes
        from torchao.quantization.pt2e import FakeQuantizeBase as AoFakeQuantize
        from torchao.quantization.pt2e import ObserverBase as AoObserver

        kinds += [AoFakeQuantize, AoObserver]
    except ImportError:
        pass
    return isinstance(module, tuple(kinds))


def _observers(prepared: torch.fx.GraphModule) -> tuple[dict[str, torch.nn.Module], list[tuple]]:
    """The graph's observers of activations (by module name), and (observer, constant) pairs for
    those that watch a constant; in QAT modules each weight's own fake-quantizer is one too."""
    activations, constants = {}, []
    for node in prepared.graph.nodes:
        if node.op != "call_module" or not _is_observer(module := prepared.get_submodule(node.target)):
            continue
        source = node.args[0]
        if isinstance(source, torch.fx.Node) and source.op == "get_attr":
            constants.append((module, operator.attrgetter(source.target)(prepared)))
        else:
            activations[node.target] = module
    for module in prepared.modules():
        if _is_observer(getattr(module, "weight_fake_quant", None)):
            constants.append((module.weight_fake_quant, module.weight))
    return activations, constants


def _activation_state(prepared: torch.fx.GraphModule) -> dict:
    """Each activation observer's state, values only (a number where the tensor holds one): the
    dtypes and shapes are the restored graph's own."""
    activations, _ = _observers(prepared)
    return {
        name: {key: _values(t) for key, t in module.state_dict().items()}
        for name, module in activations.items()
    }


def _values(t: torch.Tensor) -> float | int | list:
    values = t.flatten().tolist()
    return values[0] if len(values) == 1 else values


def _restore(prepared: torch.fx.GraphModule, stored: dict) -> None:
    activations, constants = _observers(prepared)
    if set(stored) != set(activations):  # the digest covers the code, so only a damaged store
        raise PcarnError(
            "stored int8 ranges do not fit this graph: remove them from the store or pass --int8-choices none"
        )
    for name, module in activations.items():
        state = module.state_dict()
        for key, values in stored[name].items():
            restored = torch.tensor(values, dtype=state[key].dtype)
            state[key] = (
                restored.reshape(state[key].shape) if restored.numel() == state[key].numel() else restored
            )
        module.load_state_dict(state)
    with torch.no_grad():
        for module, constant in constants:
            module(constant)
