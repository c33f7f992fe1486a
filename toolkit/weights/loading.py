"""One entry point that turns a path or a name into a ready-to-run model and its identity.

``load_any`` returns a :class:`LoadedModel`: the network plus everything written wherever a model's
identity is recorded (model cards, export manifests, bench rows, upscale messages), so nobody rebuilds
that record by hand.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from models import PCARN, variant_of
from toolkit.errors import PcarnError
from toolkit.inference import receptive_radius
from toolkit.provenance import sha256_of
from toolkit.weights.authors import load_authors_checkpoint
from toolkit.weights.checkpoint import load_checkpoint, read_metadata
from toolkit.weights.registry import MODELS, fetch_official, known_names, resolve, shipped_path

TORCH_SUFFIXES = (".pth", ".pt", ".pkl", ".ckpt")


@dataclass(frozen=True)
class LoadedModel:
    """A loaded network (eval mode) and where it came from."""

    model: PCARN
    variant: str
    path: str
    sha256: str
    metadata: dict = field(default_factory=dict)  # our checkpoint's header document; {} for .pth files
    source: dict | None = None  # the authors' release record, or what our checkpoint was made from
    note: str | None = None  # e.g. a shipped name that fell back to the authors' weights

    @property
    def scales(self) -> tuple[int, ...]:
        return tuple(self.model.config.scales)

    @property
    def receptive_radius(self) -> dict[str, float]:
        """LR pixels an output pixel can see, per head (what a tile overlap must cover)."""
        return {f"x{s}": receptive_radius(self.model, s) for s in self.scales}

    @property
    def provenance(self) -> dict:
        """The identity an exported file or a bench row records."""
        return {"path": self.path, "variant": self.variant, "sha256": self.sha256}

    def require_scale(self, scale: int) -> None:
        if scale not in self.scales:
            heads = list(self.scales)
            raise PcarnError(f"scale {scale} is not supported by {self.path}; choose from {heads}")


def is_loadable(name_or_path: str | os.PathLike) -> bool:
    """Whether ``load_any`` would find something by this name or path (without loading it)."""
    return resolve(str(name_or_path)) is not None or Path(str(name_or_path)).exists()


def load_any(name_or_path: str | os.PathLike, *, quiet: bool = False) -> LoadedModel:
    """Load a checkpoint path (ours or the authors' ``.pth``) or a name of the registry."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".safetensors", *TORCH_SUFFIXES) or path.is_file():
        return _load_path(path)
    entry = resolve(text)  # a name wins over a folder of that name (the pcarn package's, say)
    if entry is None and path.exists():
        return _load_path(path)
    if entry is None:
        raise PcarnError(
            f"no checkpoint file or known model named {text!r}; known names: {', '.join(known_names())}"
        )
    if entry.source == "authors":
        return _load_path(fetch_official(entry.name, quiet=quiet))
    if shipped_path(entry.name).is_file():
        return _load_path(shipped_path(entry.name))
    fallback = MODELS[entry.fallback]
    loaded = _load_path(fetch_official(fallback.name, quiet=quiet))
    note = f"no trained {entry.name} ships yet; used the {fallback.label} weights ({fallback.name})"
    return dataclasses.replace(loaded, note=note)


def _load_path(path: Path) -> LoadedModel:
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
        return LoadedModel(model, source["variant"], str(path), source["sha256"], source=source)
    model, metadata = load_checkpoint(path)
    variant = metadata.get("variant") or variant_of(model.config) or "custom"
    return LoadedModel(model, variant, str(path), sha256_of(path), metadata, metadata.get("source"))


def load_model(name_or_path: str | os.PathLike = "pcarn-m", *, variant: str | None = None) -> PCARN:
    """Load a model by path (ours or the authors' ``.pth``) or name; ``variant`` asserts which one."""
    loaded = load_any(name_or_path)
    check_variant(loaded.model, variant, loaded.path)
    return loaded.model


def check_variant(model: PCARN, expected: str | None, origin: str) -> None:
    actual = variant_of(model.config)
    if expected is not None and actual != expected:
        raise PcarnError(f"{origin} holds a {actual} model, not the requested {expected}")


__all__ = ["LoadedModel", "is_loadable", "load_any", "load_model", "check_variant", "read_metadata"]
