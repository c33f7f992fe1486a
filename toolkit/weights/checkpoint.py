"""Our checkpoint format: ``.safetensors`` weights plus one JSON document in the header.

Loading rebuilds the model from that document alone and never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from models import PCARN, PCARNConfig, count_parameters, variant_of
from toolkit.atomic import atomic_path
from toolkit.errors import PcarnError
from toolkit.provenance import provenance

FORMAT_NAME = "pcarn-toolkit-checkpoint"
SCHEMA_VERSION = 1
METADATA_KEY = "pcarn_toolkit"

IO_CONTRACT = {
    "color": "RGB",
    "range": [0.0, 1.0],
    "layout": "NCHW",
    "dtype": "float32",
    "output": "RGB in [0, 1] up to overshoot; clamp before quantising",
}

METRIC_CONVENTION = {
    "psnr": "PSNR on Y (ITU-R BT.601 studio range, MATLAB rgb2ycbcr), border of `scale` px cropped",
    "ssim": "SSIM on Y, same crop, 11x11 Gaussian window sigma 1.5",
}


def build_metadata(
    model: PCARN,
    *,
    training: dict | None = None,
    metrics: dict | None = None,
    source: dict | None = None,
    made: dict | None = None,
) -> dict:
    """The JSON document stored in the checkpoint header; ``made`` keeps an earlier provenance (a
    re-evaluated checkpoint was still made when and where it was trained)."""
    config = model.config
    return {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "variant": variant_of(config),
        "config": config.to_dict(),
        "io": {**IO_CONTRACT, "scales": list(config.scales)},
        "params": count_parameters(model),
        "training": training,
        "metrics": {"convention": METRIC_CONVENTION, "values": metrics or {}},
        "source": source,
        "provenance": made or provenance(),
    }


def save_checkpoint(model: PCARN, path: str | os.PathLike, **metadata_fields) -> dict:
    """Write ``model`` atomically; returns the metadata document that was stored."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise PcarnError(f"checkpoint files end in .safetensors, got {path.name}")
    metadata = build_metadata(model, **metadata_fields)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(metadata)})
    return metadata


def read_metadata(path: str | os.PathLike) -> dict:
    """Parse and validate the header document without loading any tensor."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise PcarnError(f"{path} is not a readable .safetensors checkpoint ({exc})") from None
    if METADATA_KEY not in header:
        raise PcarnError(f"{path} is a safetensors file but not a pcarn-toolkit checkpoint (no metadata)")
    try:
        metadata = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise PcarnError(f"{path}: checkpoint metadata is not valid JSON ({exc})") from None
    if metadata.get("format") != FORMAT_NAME:
        raise PcarnError(f"{path}: unknown checkpoint format {metadata.get('format')!r}")
    if metadata.get("schema_version") != SCHEMA_VERSION:
        raise PcarnError(
            f"{path}: checkpoint schema {metadata.get('schema_version')} is not supported "
            f"(this toolkit reads schema {SCHEMA_VERSION})"
        )
    return metadata


def _describe(kind: str, keys: list[str]) -> str:
    if not keys:
        return ""
    return f"{kind} {keys[0]}" + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")


def load_state_into(model: PCARN, state: dict[str, torch.Tensor], origin: str) -> PCARN:
    """Load ``state`` strictly, turning key and shape mismatches into one clear message."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [_describe("missing", missing), _describe("unexpected", unexpected)]
        if wrong:
            k = wrong[0]
            parts.append(f"{k} has shape {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}")
        arch = variant_of(model.config) or "configured"
        details = "; ".join(p for p in parts if p)
        raise PcarnError(f"{origin}: weights do not match the {arch} architecture: {details}")
    model.load_state_dict(state, strict=True)
    return model


def weights_sha256(module: torch.nn.Module) -> str:
    """sha256 of every tensor of ``module``'s state, by name: the same weights give the same digest
    (what an int8 choice and a tuned head are filed under)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike) -> tuple[PCARN, dict]:
    """Rebuild the model from the header's config and load its weights (no pickle involved)."""
    path = Path(path)
    metadata = read_metadata(path)
    try:
        config = PCARNConfig.from_dict(metadata["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PcarnError(f"{path}: checkpoint config is invalid ({exc})") from None
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                state[key] = f.get_tensor(key)
    except (SafetensorError, OSError) as exc:
        raise PcarnError(f"{path}: cannot read checkpoint tensors ({exc})") from None
    model = load_state_into(PCARN(config), state, str(path))
    return model.eval(), metadata


def training_lineage(training: dict) -> dict:
    """The part of a checkpoint's training record that a run started from it keeps as its lineage."""
    keep = ("stage", "steps", "wall_seconds", "data", "command", "init", "init_training")
    return {k: training[k] for k in keep if k in training}
