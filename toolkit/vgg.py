"""VGG19 up to conv5_4 (before its ReLU) for the perceptual loss of Eq. 5, defined here.

The ImageNet weights are torchvision's file ``vgg19-dcbb9e9d.pth``: taken from ``--vgg-weights``, the
PyTorch hub cache, or downloaded; offline with none of these, stage 2 stops at start and says where
to put the file.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.errors import PcarnError

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILE = "vgg19-dcbb9e9d.pth"
# torchvision's VGG19 "E" configuration; "M" is a 2x2 max-pool.
VGG19_LAYERS = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """``features`` indices match torchvision, so its state dict loads as is; stops at conv5_4."""

    def __init__(self, widths: tuple = VGG19_LAYERS, width_divisor: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, width in enumerate(widths):
            if width == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            c_out = max(1, width // width_divisor)
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            if i < len(widths) - 1:  # no ReLU after the last conv: features before its activation
                layers.append(nn.ReLU(inplace=True))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.features((rgb - self.mean) / self.std)


def hub_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def load_vgg19(weights: str | os.PathLike | None = None) -> VGGFeatures:
    """VGG19 features with ImageNet weights, or one clear error saying where the file belongs."""
    path = Path(weights) if weights else hub_path()
    if weights and not path.is_file():
        raise PcarnError(f"--vgg-weights file not found: {path}")
    if not path.is_file():
        try:
            torch.hub.download_url_to_file(VGG19_URL, str(path), progress=True)
        except (urllib.error.URLError, OSError) as exc:
            raise PcarnError(
                f"stage 2 needs VGG19 ImageNet weights and could not download them ({exc}); "
                f"put {VGG19_FILE} (from {VGG19_URL}) at {path} or pass --vgg-weights FILE"
            ) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    model = VGGFeatures()
    missing, _ = model.load_state_dict(features, strict=False)
    if missing:
        raise PcarnError(f"{path} is not torchvision's VGG19: missing {missing[0]}")
    return model


def perceptual_loss(vgg: VGGFeatures, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Eq. 5: mean squared distance of conv5_4 features of SR and HR."""
    with torch.no_grad():
        target = vgg(hr)
    return F.mse_loss(vgg(sr), target)
