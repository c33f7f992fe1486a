"""Atomic file writes (a temp file in the target folder, then one rename, so nothing half-written) and
output folders that a refused or failed command leaves as it found them."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from toolkit.errors import PcarnError


def check_output_folder(path: str | os.PathLike) -> Path:
    """``path`` as a file to write: its folder exists and is writable, and it is not a folder."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise PcarnError(f"output folder does not exist: {folder}")
    if path.is_dir():
        raise PcarnError(f"{path} is a folder; give a file path to write")
    if not os.access(folder, os.W_OK):
        raise PcarnError(f"output folder is not writable: {folder}")
    return path


def check_output_dir(path: str | os.PathLike) -> Path:
    """``path`` as a folder to write into (made if missing): not an existing file, nor under one."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                raise PcarnError(f"{place} is a file; give a folder for the output")
            break
    return path


@contextlib.contextmanager
def removed_on_failure(folder: str | os.PathLike) -> Iterator[Path]:
    """Run a block that writes into ``folder``; if it raises, whatever the block added to the folder
    (or the folder itself, if the block created it) is removed, so a refused command leaves nothing."""
    folder = Path(folder)
    existed = folder.is_dir()
    before = set(os.listdir(folder)) if existed else set()
    try:
        yield folder
    except BaseException:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        elif folder.is_dir():
            for name in set(os.listdir(folder)) - before:
                target = folder / name
                shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it vanishes."""
    path = check_output_folder(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; the result should look like any new file
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def scratch_tempdir(prefix: str = "pcarn-") -> Iterator[Path]:
    """Point this process and its children (``TMPDIR``, ``tempfile``) at a fresh folder that is
    removed when the block ends, success or failure: what libraries leave in the temporary folder
    (ONNX Runtime's ``.ses``, torch's inductor cache, converters' scratch files) goes with it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(folder, ignore_errors=True)
