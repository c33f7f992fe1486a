"""Import of the authors' released ``.pth`` files (PCARN-pytorch and CARN-pytorch).

The legacy state dicts are loaded with ``weights_only=True``; one explicit key map turns them into
our layout, the variant is read off the keys, and tied units are checked to really be identical.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

from models import PCARN, PRESETS, count_parameters
from toolkit.errors import PcarnError
from toolkit.provenance import sha256_of
from toolkit.weights.checkpoint import load_state_into

_UNIT_KEY = re.compile(r"^b(\d+)\.b(\d+)\.(.+)$")
_LOCAL_FUSION_KEY = re.compile(r"^b(\d+)\.c(\d+)\.(?:body\.0\.)?(weight|bias)$")
_GLOBAL_FUSION_KEY = re.compile(r"^c(\d+)\.(?:body\.0\.)?(weight|bias)$")
_HEAD_KEY = re.compile(r"^upsample\.up(\d)\.body\.(\d+)\.(weight|bias)$")
# CARN wraps a unit's convs in one Sequential (conv, ReLU, conv[, ReLU, 1x1]); PCARN names them.
_CARN_UNIT_PARTS = {"body.0": "conv1", "body.2": "conv2", "body.4": "pw"}


def detect_variant(state: dict[str, torch.Tensor]) -> str:
    """Name the architecture from the key layout; raise a clear error when it fits none."""
    keys = set(state)
    if not {"entry.weight", "exit.weight"} <= keys or not any(k.startswith("upsample.") for k in keys):
        raise PcarnError(
            "not a PCARN/CARN checkpoint: expected keys entry.*, b1.*, upsample.* and exit.* "
            f"(found e.g. {', '.join(sorted(keys)[:3]) or 'nothing'})"
        )
    if "b1.b1.pw.weight" in keys:
        return "pcarn-m"
    if "b1.b1.conv1.weight" in keys:
        return "pcarn"
    if "b1.b1.body.4.weight" in keys:
        return "carn-m"
    if "b1.b1.body.2.weight" in keys:
        return "carn"
    raise PcarnError("unrecognised residual unit layout under b1.b1.*: cannot tell PCARN from CARN")


def _check_mean_shift(state: dict[str, torch.Tensor], config_mean: tuple[float, ...]) -> None:
    """Our model holds the mean shift as a constant; make sure the file agrees with it."""
    mean = torch.tensor(config_mean)
    for key, sign in (("sub_mean", -1.0), ("add_mean", 1.0)):
        w, b = state.get(f"{key}.shifter.weight"), state.get(f"{key}.shifter.bias")
        if w is None or b is None:
            continue
        if not torch.equal(w.reshape(3, 3), torch.eye(3)) or not torch.allclose(b, sign * mean, atol=1e-6):
            raise PcarnError(f"{key} in the checkpoint is not the DIV2K mean shift this toolkit assumes")


def convert_state_dict(state: dict[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor]]:
    """Return ``(variant, state_dict in our layout)`` for an authors' state dict."""
    variant = detect_variant(state)
    config = PRESETS[variant]
    _check_mean_shift(state, config.rgb_mean)
    out: dict[str, torch.Tensor] = {}
    tied_seen: dict[str, tuple[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        if key.startswith(("sub_mean.", "add_mean.")):
            continue
        if key.startswith(("entry.", "exit.")):
            out[key] = tensor
        elif m := _LOCAL_FUSION_KEY.match(key):
            out[f"blocks.{int(m[1]) - 1}.fusions.{int(m[2]) - 1}.{m[3]}"] = tensor
        elif m := _GLOBAL_FUSION_KEY.match(key):
            out[f"fusions.{int(m[1]) - 1}.{m[2]}"] = tensor
        elif m := _UNIT_KEY.match(key):
            block, unit, rest = int(m[1]) - 1, int(m[2]) - 1, m[3]
            part, _, param = rest.rpartition(".")
            part = _CARN_UNIT_PARTS.get(part, part)
            if config.tied_units:
                ours = f"blocks.{block}.units.0.{part}.{param}"
                if ours in tied_seen and not torch.equal(tied_seen[ours][1], tensor):
                    raise PcarnError(
                        f"{key} should be tied to {tied_seen[ours][0]} (PCARN-M shares one unit per "
                        "block) but holds different values: the file is corrupt or not PCARN-M"
                    )
                tied_seen.setdefault(ours, (key, tensor))
                out[ours] = tensor
            else:
                out[f"blocks.{block}.units.{unit}.{part}.{param}"] = tensor
        elif m := _HEAD_KEY.match(key):
            stage = int(m[2]) // 3  # body = [conv, ReLU, shuffle] per stage
            out[f"heads.x{m[1]}.stages.{stage}.{m[3]}"] = tensor
        else:
            raise PcarnError(f"unexpected key {key!r} in a {variant} checkpoint")
    return variant, out


def read_authors_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise PcarnError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    # Current torch files are zip archives; legacy ones start with a pickle protocol-2 header.
    if not (zipfile.is_zipfile(path) or magic[:2] == b"\x80\x02"):
        raise PcarnError(f"{path} is not a PyTorch checkpoint (neither a torch zip file nor a legacy one)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise PcarnError(
            f"{path} holds objects other than tensors; refusing to unpickle it (only weights are loaded)"
        ) from None
    except Exception as exc:  # torch raises many types for damaged files; all mean the same here
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PcarnError(f"{path} is a damaged PyTorch checkpoint ({first_line})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PcarnError(f"{path} does not hold a state dict of tensors")
    return state


def load_authors_checkpoint(path: str | os.PathLike) -> tuple[PCARN, dict]:
    """Build our model from an authors' ``.pth``; returns ``(model, source record)``."""
    path = Path(path)
    variant, state = convert_state_dict(read_authors_state(path))
    model = load_state_into(PCARN(PRESETS[variant]), state, str(path))
    source = {
        "kind": "authors-release",
        "file": path.name,
        "sha256": sha256_of(path),
        "variant": variant,
        "params": count_parameters(model),
    }
    return model.eval(), source
