"""Where a file came from: toolkit version, git commit, torch version, date, content hash."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def toolkit_version() -> str:
    try:
        from importlib.metadata import version

        return version("pcarn-toolkit")
    except Exception:  # running from a source tree that was never installed
        return "0+unknown"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def provenance() -> dict:
    import torch  # here, not at import: the CLI's parser reads this module's version

    return {
        "toolkit_version": toolkit_version(),
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
