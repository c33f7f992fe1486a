"""The installed package carries every file its code reads: a wheel built from this checkout, installed
into a fresh virtual environment outside it, upscales the packaged photo and reports a model."""

from __future__ import annotations

import re
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def _run(*cmd, cwd: Path) -> str:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_wheel_installed_elsewhere_upscales_and_reports(tmp_path):
    # Built from a copy, so the build leaves nothing (build/, *.egg-info) in the checkout.
    source = tmp_path / "source"
    skip = shutil.ignore_patterns(".*", "build", "deploy", "exported", "runs", "*.egg-info")
    shutil.copytree(REPO, source, ignore=skip)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, source, cwd=tmp_path)
    (wheel,) = wheels.glob("pcarn_toolkit-*.whl")
    env = tmp_path / "env"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    purelib = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip()
    )
    # The wheel goes in by itself; its dependencies are borrowed from this environment, behind it on
    # sys.path (a .pth line adds a folder without running that folder's own .pth files, so this
    # checkout's editable install stays out).
    _run(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", purelib, wheel, cwd=tmp_path)
    (purelib / "borrowed-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    where = _run(
        python, "-c", "import pcarn, toolkit; print(pcarn.__file__); print(toolkit.__file__)", cwd=tmp_path
    )
    assert all(line.startswith(str(purelib)) for line in where.split()), where
    sample = purelib / "toolkit" / "assets" / "rocket-lr.png"
    pcarn = [python, "-m", "pcarn"]
    _run(*pcarn, "upscale", sample, tmp_path / "x2.png", "--scale", "2", "--quiet", cwd=tmp_path)
    with Image.open(sample) as lr, Image.open(tmp_path / "x2.png") as sr:
        assert sr.size == (2 * lr.size[0], 2 * lr.size[1])
    info = _run(*pcarn, "info", "--variant", "pcarn-m", cwd=tmp_path)
    assert "414,787 parameters" in info
    for card in (REPO / "models").glob("*.md"):  # every card, and every picture it shows
        pictures = re.findall(r"\]\(([^)/]+\.png)\)", card.read_text())
        for name in (card.name, *pictures):
            assert (purelib / "models" / name).is_file(), name


def test_every_package_folder_is_listed_in_pyproject():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    roots = ("models", "toolkit", "export", "benchmarks", "pcarn")
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for root in roots
        for init in (REPO / root).rglob("__init__.py")
    }
    assert found == listed
