"""One entry point that turns a path or a name into a ready-to-run model."""

from __future__ import annotations

import os
from pathlib import Path

from models import PCARN, variant_of
from toolkit.authors import load_authors_checkpoint
from toolkit.checkpoint import load_checkpoint, read_metadata
from toolkit.errors import PcarnError
from toolkit.registry import OFFICIAL, SHIPPED_FALLBACK, fetch_official, known_names, shipped_path

TORCH_SUFFIXES = (".pth", ".pt", ".pkl", ".ckpt")


def load_any(name_or_path: str | os.PathLike, *, quiet: bool = False) -> tuple[PCARN, dict]:
    """Return ``(model in eval mode, description)`` for a checkpoint path or a known name."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".safetensors", *TORCH_SUFFIXES) or path.exists():
        return _load_path(path)
    key = text.lower()
    if key in SHIPPED_FALLBACK:
        if shipped_path(key).is_file():
            return _load_path(shipped_path(key))
        fallback = SHIPPED_FALLBACK[key]
        model, info = _load_path(fetch_official(fallback, quiet=quiet))
        info["note"] = f"no trained {key} ships yet; used the authors' {fallback} weights"
        return model, info
    if key in OFFICIAL:
        return _load_path(fetch_official(key, quiet=quiet))
    raise PcarnError(
        f"no checkpoint file or known model named {text!r}; known names: {', '.join(known_names())}"
    )


def _load_path(path: Path) -> tuple[PCARN, dict]:
    if not path.exists():
        raise PcarnError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise PcarnError(f"checkpoint path is a folder, not a file: {path}")
    if path.suffix not in (".safetensors", *TORCH_SUFFIXES):
        raise PcarnError(
            f"{path} is not a checkpoint: expected a .safetensors file of ours or an authors' .pth"
        )
    if path.suffix in TORCH_SUFFIXES:
        model, source = load_authors_checkpoint(path)
        return model, {"path": str(path), "variant": source["variant"], "source": source}
    model, metadata = load_checkpoint(path)
    return model, {"path": str(path), "variant": metadata.get("variant"), "metadata": metadata}


def load_model(name_or_path: str | os.PathLike = "pcarn-m", *, variant: str | None = None) -> PCARN:
    """Load a model by path (ours or the authors' ``.pth``) or name; ``variant`` asserts which one."""
    model, info = load_any(name_or_path)
    check_variant(model, variant, info["path"])
    return model


def check_variant(model: PCARN, expected: str | None, origin: str) -> None:
    actual = variant_of(model.config)
    if expected is not None and actual != expected:
        raise PcarnError(f"{origin} holds a {actual} model, not the requested {expected}")


__all__ = ["load_any", "load_model", "check_variant", "read_metadata"]
