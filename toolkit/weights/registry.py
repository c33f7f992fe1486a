"""Named weights: the shipped ``models/*.safetensors`` and the authors' released files.

An authors' file is looked for in the download cache, then in ``../shared/reference/official-weights``
(or ``$PCARN_OFFICIAL_DIR``), and only then downloaded; every copy is checked against its sha256.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from toolkit.atomic import atomic_path
from toolkit.errors import PcarnError
from toolkit.provenance import REPO_ROOT, sha256_of

PCARN_BASE = "https://github.com/nmhkahn/PCARN-pytorch/raw/master/checkpoints"
CARN_BASE = "https://github.com/nmhkahn/CARN-pytorch/raw/master/checkpoint"


@dataclass(frozen=True)
class ModelEntry:
    """One loadable name: a checkpoint we ship under ``models/`` or one the authors released."""

    name: str  # lower-case and self-explaining: ours "pcarn-m-gan", the authors' "authors-pcarn-m-gan"
    variant: str
    stage: str  # "l1" (PSNR-oriented) or "gan" (photo-realistic)
    source: str  # "shipped" or "authors"
    label: str  # how reports and cards name it
    aliases: tuple[str, ...] = ()  # earlier names, still accepted exactly as written
    url: str | None = None  # the authors' release
    sha256: str | None = None  # the authors' release's; None: published without one, none held here
    fallback: str | None = None  # ours: the authors' entry used while no trained checkpoint ships
    deploy: bool = False  # exported by ``pcarn deploy`` by default

    @property
    def file_name(self) -> str:
        """The authors' release file name (``PCARN-M.pth``)."""
        return Path(self.url or "").name

    @property
    def release(self) -> str:
        """The authors' release name (``PCARN-M``)."""
        return Path(self.url or "").stem


def _authors(name: str, variant: str, stage: str, alias: str, base: str, sha256: str | None, label: str):
    return ModelEntry(name, variant, stage, "authors", label, (alias,), f"{base}/{alias}.pth", sha256)


# Every name a model can be loaded by. The authors' names are the release file names (``PCARN-M``
# is their GAN model, ``PCARN-M-L1`` their stage 1), kept as aliases beside names that do not rely on
# letter case to tell their weights from ours.
MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry(
            "pcarn-m-gan",
            "pcarn-m",
            "gan",
            "shipped",
            "ours pcarn-m-gan",
            fallback="authors-pcarn-m-gan",
            deploy=True,
        ),
        ModelEntry(
            "pcarn-m",
            "pcarn-m",
            "l1",
            "shipped",
            "ours pcarn-m (stage 1)",
            fallback="authors-pcarn-m-l1",
            deploy=True,
        ),
        ModelEntry("pcarn-gan", "pcarn", "gan", "shipped", "ours pcarn-gan", fallback="authors-pcarn-gan"),
        ModelEntry("pcarn", "pcarn", "l1", "shipped", "ours pcarn (stage 1)", fallback="authors-pcarn-l1"),
        _authors(
            "authors-pcarn-m-gan",
            "pcarn-m",
            "gan",
            "PCARN-M",
            PCARN_BASE,
            "a7e328d6c87991ec81540d6b0b15723714443d0c276bec0e864aae441ef16a24",
            "authors' PCARN-M (GAN)",
        ),
        _authors(
            "authors-pcarn-m-l1",
            "pcarn-m",
            "l1",
            "PCARN-M-L1",
            PCARN_BASE,
            "50a018566eb28fbf966e0e4d43b513fa90b7242932afd9dddbc0be69d9df6ec9",
            "authors' PCARN-M-L1",
        ),
        _authors("authors-pcarn-gan", "pcarn", "gan", "PCARN", PCARN_BASE, None, "authors' PCARN (GAN)"),
        _authors("authors-pcarn-l1", "pcarn", "l1", "PCARN-L1", PCARN_BASE, None, "authors' PCARN-L1"),
        _authors(
            "authors-carn-m",
            "carn-m",
            "l1",
            "carn_m",
            CARN_BASE,
            "d48a759a84509351facb6b7c6d5bd6edec98b98519b8c464ee4ab44d2ba964ff",
            "authors' CARN-M (ECCV 2018)",
        ),
        _authors("authors-carn", "carn", "l1", "carn", CARN_BASE, None, "authors' CARN (ECCV 2018)"),
    )
}
SHIPPED_NAMES = tuple(n for n, e in MODELS.items() if e.source == "shipped")
DEPLOY_DEFAULT = tuple(n for n, e in MODELS.items() if e.deploy)


def resolve(name: str) -> ModelEntry | None:
    """The entry ``name`` means: a name, an alias as written, then a name or alias in any letter case
    (an alias in other case never shadows one of our names: ``pcarn-m`` is ours, ``PCARN-M`` theirs)."""
    if name in MODELS:
        return MODELS[name]
    for entry in MODELS.values():
        if name in entry.aliases:
            return entry
    key = name.lower()
    for entry in MODELS.values():
        if key == entry.name or key in (a.lower() for a in entry.aliases):
            return entry
    return None


SHIPPED_DIR = REPO_ROOT / "models"


def cache_dir() -> Path:
    root = os.environ.get("PCARN_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(root) / "pcarn-toolkit" if root else Path.home() / ".cache" / "pcarn-toolkit"


def official_dir() -> Path:
    env = os.environ.get("PCARN_OFFICIAL_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "reference" / "official-weights"


def _verified(path: Path, weights: ModelEntry) -> bool:
    return weights.sha256 is None or sha256_of(path) == weights.sha256


def fetch_official(name: str, *, url: str | None = None, quiet: bool = False) -> Path:
    """Local path of an authors' release, downloading and verifying it if needed."""
    weights = resolve(name)
    if weights is None or weights.source != "authors":
        released = ", ".join(
            f"{n} ({', '.join(e.aliases)})" for n, e in MODELS.items() if e.source == "authors"
        )
        raise PcarnError(f"unknown released model {name!r}; choose from {released}")
    filename = weights.file_name
    for candidate in (cache_dir() / filename, official_dir() / filename):
        if candidate.is_file() and _verified(candidate, weights):
            return candidate
    target = cache_dir() / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    source = url or weights.url
    if not quiet:
        print(f"downloading {weights.release} from {source}", file=sys.stderr)
    try:
        with atomic_path(target) as tmp, urllib.request.urlopen(source, timeout=60) as response:
            with open(tmp, "wb") as f:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
            digest = sha256_of(tmp)
            if weights.sha256 is not None and digest != weights.sha256:
                raise PcarnError(
                    f"downloaded {weights.release} has sha256 {digest}, expected {weights.sha256}; not kept"
                )
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PcarnError(
            f"cannot download {weights.release} from {source} ({reason}); offline, put the file at {target}"
        ) from None
    if weights.sha256 is None and not quiet:
        print(
            f"note: no published sha256 for {weights.release}; downloaded file has {digest}", file=sys.stderr
        )
    return target


def shipped_path(name: str) -> Path:
    return SHIPPED_DIR / f"{name}.safetensors"


def local_copy(entry: ModelEntry) -> Path | None:
    """Where an entry's weights are on this machine without downloading, or None."""
    if entry.source == "shipped":
        return shipped_path(entry.name) if shipped_path(entry.name).is_file() else None
    for candidate in (cache_dir() / entry.file_name, official_dir() / entry.file_name):
        if candidate.is_file():
            return candidate
    return None


def known_names() -> list[str]:
    """Every name ``--model`` takes, aliases included."""
    return [n for e in MODELS.values() for n in (e.name, *e.aliases)]
