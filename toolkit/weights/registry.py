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
from toolkit.provenance import REPO_ROOT
from toolkit.weights.authors import sha256_of
from toolkit.weights.names import SHIPPED_FALLBACK

PCARN_BASE = "https://github.com/nmhkahn/PCARN-pytorch/raw/master/checkpoints"
CARN_BASE = "https://github.com/nmhkahn/CARN-pytorch/raw/master/checkpoint"


@dataclass(frozen=True)
class OfficialWeights:
    name: str
    url: str
    sha256: str | None  # None: the authors published no hash and we hold no copy to take one from
    description: str


OFFICIAL: dict[str, OfficialWeights] = {
    w.name.lower(): w
    for w in [
        OfficialWeights(
            "PCARN-M-L1",
            f"{PCARN_BASE}/PCARN-M-L1.pth",
            "50a018566eb28fbf966e0e4d43b513fa90b7242932afd9dddbc0be69d9df6ec9",
            "PCARN-M after the L1 stage (PSNR-oriented)",
        ),
        OfficialWeights(
            "PCARN-M",
            f"{PCARN_BASE}/PCARN-M.pth",
            "a7e328d6c87991ec81540d6b0b15723714443d0c276bec0e864aae441ef16a24",
            "PCARN-M after the GAN stage (photo-realistic)",
        ),
        OfficialWeights("PCARN-L1", f"{PCARN_BASE}/PCARN-L1.pth", None, "PCARN after the L1 stage"),
        OfficialWeights("PCARN", f"{PCARN_BASE}/PCARN.pth", None, "PCARN after the GAN stage"),
        OfficialWeights(
            "carn_m",
            f"{CARN_BASE}/carn_m.pth",
            "d48a759a84509351facb6b7c6d5bd6edec98b98519b8c464ee4ab44d2ba964ff",
            "CARN-M (ECCV 2018)",
        ),
        OfficialWeights("carn", f"{CARN_BASE}/carn.pth", None, "CARN (ECCV 2018)"),
    ]
}

SHIPPED_DIR = REPO_ROOT / "models"


def cache_dir() -> Path:
    root = os.environ.get("PCARN_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(root) / "pcarn-toolkit" if root else Path.home() / ".cache" / "pcarn-toolkit"


def official_dir() -> Path:
    env = os.environ.get("PCARN_OFFICIAL_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "reference" / "official-weights"


def _verified(path: Path, weights: OfficialWeights) -> bool:
    return weights.sha256 is None or sha256_of(path) == weights.sha256


def fetch_official(name: str, *, url: str | None = None, quiet: bool = False) -> Path:
    """Local path of an authors' release, downloading and verifying it if needed."""
    weights = OFFICIAL.get(name.lower())
    if weights is None:
        raise PcarnError(
            f"unknown released model {name!r}; choose from {', '.join(w.name for w in OFFICIAL.values())}"
        )
    filename = f"{weights.name}.pth"
    for candidate in (cache_dir() / filename, official_dir() / filename):
        if candidate.is_file() and _verified(candidate, weights):
            return candidate
    target = cache_dir() / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    source = url or weights.url
    if not quiet:
        print(f"downloading {weights.name} from {source}", file=sys.stderr)
    try:
        with atomic_path(target) as tmp, urllib.request.urlopen(source, timeout=60) as response:
            with open(tmp, "wb") as f:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
            digest = sha256_of(tmp)
            if weights.sha256 is not None and digest != weights.sha256:
                raise PcarnError(
                    f"downloaded {weights.name} has sha256 {digest}, expected {weights.sha256}; not kept"
                )
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PcarnError(
            f"cannot download {weights.name} from {source} ({reason}); offline, put the file at {target}"
        ) from None
    if weights.sha256 is None and not quiet:
        print(f"note: no published sha256 for {weights.name}; downloaded file has {digest}", file=sys.stderr)
    return target


def shipped_path(name: str) -> Path:
    return SHIPPED_DIR / f"{name}.safetensors"


def known_names() -> list[str]:
    return sorted(SHIPPED_FALLBACK) + [w.name for w in OFFICIAL.values()]
