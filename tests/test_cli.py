"""The ``pcarn`` command as users run it: exact numbers, golden upscales, one-line errors."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import OFFICIAL, requires_shared, run_cli
from PIL import Image

from models import build_model
from pcarn.cli.main import main
from toolkit.weights.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]


pcarn = run_cli


def test_the_installed_entry_point_runs():
    """The console script users type, in its own process: help and a one-line error."""
    script = Path(sys.executable).parent / "pcarn"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pcarn"]
    done = subprocess.run([*command, "info", "--variant", "pcarn-m"], capture_output=True, text=True)
    assert done.returncode == 0 and "414,787 parameters" in done.stdout
    done = subprocess.run([*command, "info", "--variant", "nope"], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "choose from" in done.stderr


@pytest.mark.parametrize(
    ("variant", "params", "giga"),
    [("pcarn", 1_591_939, (222.8, 118.8, 90.9)), ("pcarn-m", 414_787, (91.2, 46.1, 32.5))],
)
def test_info_json_prints_the_exact_numbers(variant, params, giga):
    result = pcarn("info", "--variant", variant, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # exactly one JSON object, nothing else on stdout
    assert report["variant"] == variant and report["params"] == params
    for head, expected in zip(("x2", "x3", "x4"), giga, strict=True):
        assert isinstance(report["multadds_720p"][head], int)
        assert abs(report["multadds_720p"][head] / 1e9 - expected) <= 0.1


def test_info_human_summary_and_json_file(tmp_path):
    result = pcarn("info", "--variant", "pcarn-m", "--json", str(tmp_path / "info.json"))
    assert result.returncode == 0 and "414,787 parameters" in result.stdout and "32.5 G" in result.stdout
    assert json.loads((tmp_path / "info.json").read_text())["params"] == 414_787


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--variants", "nope"], "unknown variant 'nope'; choose from pcarn, pcarn-m"),
        (["bench", "--runtimes", "torch,nope"], "unknown runtime 'nope'; choose from torch, torch-cl, onnx"),
        (["bench", "--peers", "esrgan"], "unknown peer 'esrgan'; choose from srresnet"),
        (
            ["export", "--formats", "onnx,nope", "--out", "x"],
            "unknown format 'nope'; choose from onnx, coreml",
        ),
        (["export", "--precision", "int4", "--out", "x"], "unknown precision 'int4'; choose from fp32, fp16"),
        (["deploy", "--models", "pcarn-m,nope"], "unknown model 'nope' for --models"),
        (["profile", "--variants", "nope"], "unknown variant 'nope'; choose from"),
        (["info", "--variant", "nope"], "unknown variant 'nope'; choose from"),
    ],
)
def test_unknown_names_are_refused_before_any_work(args, message, tmp_path):
    result = pcarn(*args, cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was written


@requires_shared
@pytest.mark.parametrize("name", ["PCARN-M-L1", "PCARN-M"])
def test_upscale_reproduces_the_authors_outputs(name, golden, tmp_path):
    Image.fromarray(golden["lr"]).save(tmp_path / "lr.png")
    for scale in (2, 3, 4):
        out = tmp_path / f"sr{scale}.png"
        result = pcarn(
            "upscale",
            str(tmp_path / "lr.png"),
            str(out),
            "--scale",
            str(scale),
            "--model",
            str(OFFICIAL / f"{name}.pth"),
            "--quiet",
        )
        assert result.returncode == 0, result.stderr
        expected = np.rint(np.clip(golden[f"{name}_x{scale}"][0].transpose(1, 2, 0), 0, 1) * 255)
        got = np.asarray(Image.open(out)).astype(float)
        assert np.abs(got - expected).max() <= 1


@requires_shared
def test_import_then_upscale_with_our_format(tmp_path, golden):
    converted = tmp_path / "pcarn-m-l1.safetensors"
    result = pcarn("import", str(OFFICIAL / "PCARN-M-L1.pth"), str(converted))
    assert result.returncode == 0, result.stderr
    Image.fromarray(golden["lr"]).save(tmp_path / "lr.png")
    result = pcarn(
        "upscale",
        str(tmp_path / "lr.png"),
        str(tmp_path / "sr.webp"),
        "--scale",
        "2",
        "--model",
        str(converted),
        "--variant",
        "pcarn-m",
    )
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "sr.webp").size == (100, 76)


def test_tiled_upscale_of_a_large_image_shows_progress(tmp_path):
    model = build_model("pcarn-test")
    save_checkpoint(model, tmp_path / "tiny.safetensors")
    noise = np.random.default_rng(1).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "big.png")
    result = pcarn(
        "upscale",
        str(tmp_path / "big.png"),
        str(tmp_path / "out.png"),
        "--scale",
        "3",
        "--model",
        str(tmp_path / "tiny.safetensors"),
        "--tile",
        "32",
        "--tile-overlap",
        "8",
    )
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out.png").size == (210, 270)
    assert "tiles" in result.stderr  # the progress bar


def _zero_size_png(path: Path) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


@pytest.fixture
def bad_inputs(tmp_path):
    model = build_model("pcarn-test")
    save_checkpoint(model, tmp_path / "tiny.safetensors")
    save_checkpoint(build_model("pcarn-test", scales=(2,)), tmp_path / "x2only.safetensors")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "ok.png")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.png")
    full = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(full[: len(full) // 2])
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "fake.safetensors").write_text("not a checkpoint")
    (tmp_path / "fake.pth").write_text("not a checkpoint")
    _zero_size_png(tmp_path / "zero.png")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.png", "o.png"], "input file not found"),
        (["text.png", "o.png"], "not an image Pillow can read"),
        (["cut.png", "o.png"], "truncated or corrupt"),
        (["zero.png", "o.png"], "zero size"),
        (["ok.png", "o.png", "--scale", "5"], "scale must be 2, 3 or 4"),
        (["ok.png", "o.png", "--scale", "3", "--model", "x2only.safetensors"], "scale 3 is not supported"),
        (["ok.png", "o.png", "--model", "fake.safetensors"], "not a readable .safetensors checkpoint"),
        (["ok.png", "o.png", "--model", "fake.pth"], "not a PyTorch checkpoint"),
        (["ok.png", "o.png", "--model", "nothing-here"], "no checkpoint file or known model"),
        (["ok.png", "o.png", "--variant", "pcarn"], "holds a pcarn-test model, not the requested pcarn"),
        (["ok.png", "no/such/folder/o.png"], "output folder does not exist"),
        (["ok.png", "o.gif"], "cannot write .gif"),
    ],
)
def test_bad_input_gives_one_clear_line(bad_inputs, args, message):
    if "--model" not in args:
        args = [*args, "--model", "tiny.safetensors"]
    result = pcarn("upscale", *args, cwd=bad_inputs)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (bad_inputs / "o.png").exists()


def test_failed_upscale_leaves_an_existing_output_untouched(bad_inputs):
    (bad_inputs / "o.png").write_bytes(b"previous result")
    result = pcarn("upscale", "cut.png", "o.png", "--model", "tiny.safetensors", cwd=bad_inputs)
    assert result.returncode != 0
    assert (bad_inputs / "o.png").read_bytes() == b"previous result"
    assert sorted(p.name for p in bad_inputs.iterdir() if p.name.startswith(".")) == []


def test_eval_reports_psnr_ssim_and_lpips(tmp_path, capsys):
    from test_data import write_photos

    save_checkpoint(build_model("pcarn-test", scales=(2, 4)), tmp_path / "tiny.safetensors")
    write_photos(tmp_path / "val", 1, size=(80, 72))
    args = ["eval", "--model", str(tmp_path / "tiny.safetensors"), "--data", str(tmp_path / "val")]
    assert main([*args, "--scales", "2,4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["results"]) == {"x2", "x4"} and "LPIPS AlexNet-lin v0.1" in report["convention"]
    x2 = report["results"]["x2"]
    assert 0 < x2["lpips"] < 1 and 0 < x2["bicubic_lpips"] < x2["lpips"]  # an untrained net is worse
    assert main([*args, "--scales", "2"]) == 0
    out = capsys.readouterr().out
    assert "PSNR-Y / SSIM-Y / LPIPS" in out and f"{x2['lpips']:.3f}" in out
