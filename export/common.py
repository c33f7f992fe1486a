"""Steps every exporter shares: cut one scale head out, fold the mean shift, describe the file.

Folding, measured: adding the output mean is exactly a change of the exit conv's bias. Subtracting
the input mean is *not* exactly a change of the entry conv's bias, because the entry conv zero-pads
``x - mean``; a bias fold would pad ``x`` instead and change every border pixel (by up to ~0.1 on
the authors' PCARN-M-L1, see tests). So the exported graphs keep one elementwise ``Sub`` at the input
and fold only the exit side.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Iterator

import torch
from torch import nn

from models import PCARN, single_scale, variant_of
from models.multadds import HD_720P
from toolkit.errors import PcarnError
from toolkit.inference import receptive_radius
from toolkit.provenance import toolkit_version


class DeployHead(nn.Module):
    """A single-scale PCARN with the output mean folded into the exit bias; ``forward(x)`` in NCHW."""

    def __init__(self, model: PCARN, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.net = single_scale(model, scale).eval()
        with torch.no_grad():
            self.net.exit.bias += self.net.rgb_mean.view(3)
        self.register_buffer("input_mean", self.net.rgb_mean.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.exit(self.net.heads[f"x{self.scale}"](self.net.trunk(x - self.input_mean)))


class NHWC(nn.Module):
    """An NCHW module with NHWC input and output, TFLite's layout; the converter's own layout pass
    cancels these edge permutes."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def default_input_size(scale: int, output: tuple[int, int] = HD_720P) -> tuple[int, int]:
    """The LR size whose output covers 720p: exact for x2/x4; for x3 rounded up (240x427 -> 720x1281)."""
    return math.ceil(output[0] / scale), math.ceil(output[1] / scale)


def forward_bytes(config, size: tuple[int, int], scale: int) -> int:
    """A rough upper estimate of one forward pass's memory at LR ``size``: the cascade keeps a few
    LR feature maps alive, and the upsampler makes features at up to ``scale``**2 times the pixels."""
    return 4 * size[0] * size[1] * config.channels * (2 * scale * scale + 6)


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_input_size(model: PCARN, scales: list[int], size: tuple[int, int], *, windows: bool) -> None:
    """Refuse, before any work, an input size the machine cannot run one forward pass at, and (with
    ``windows``: files ``pcarn upscale`` and ``pcarn eval`` cut photos into) one too small to keep
    the receptive field's context on each side of a window."""
    h, w = size
    memory = physical_memory()
    need = max(forward_bytes(model.config, size, s) for s in scales)
    if memory is not None and need > memory:
        raise PcarnError(
            f"input size {h}x{w} needs about {need / 2**30:.0f} GiB for one forward pass; this machine "
            f"has {memory / 2**30:.0f} GiB"
        )
    if windows:
        context = max(math.ceil(receptive_radius(model, s)) for s in scales)
        if min(h, w) <= 2 * context:
            raise PcarnError(
                f"input size {h}x{w} is too small: photos are run in windows that keep {context} LR "
                f"pixels of context on each side, so use at least {2 * context + 1}x{2 * context + 1}"
            )


def export_metadata(model: PCARN, scale: int, layout: str, precision: str, provenance: dict | None) -> dict:
    """The metadata every exported file carries in its format's native slot."""
    return {
        "producer": "pcarn-toolkit",
        "toolkit_version": toolkit_version(),
        "variant": variant_of(model.config) or "custom",
        "scale": str(scale),
        "input_layout": layout,
        "output_layout": layout,
        "input_range": "RGB float in [0, 1]",
        "output_range": "RGB float, about [0, 1]; clamp before quantising",
        "precision": precision,
        "checkpoint": (provenance or {}).get("path", "unknown"),
        "checkpoint_sha256": (provenance or {}).get("sha256", "unknown"),
        # how many LR pixels of context a tiled runner must keep (toolkit.inference.receptive_radius)
        "receptive_radius_lr": f"{receptive_radius(model, scale):.3f}",
    }


@contextlib.contextmanager
def native_output_captured() -> Iterator[None]:
    """Silence converters' C++ and Python chatter (it goes straight to fds 1 and 2); on failure, replay it."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if failed and os.environ.get("PCARN_DEBUG"):
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace")[-4000:])
