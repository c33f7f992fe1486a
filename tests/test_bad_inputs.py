"""Bad or unusual input, as a new user types it: refused up front in one line that names the file or
value, never reported as done when it was not, nothing left behind (issue 21's sweep, one test each)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from models import build_model
from toolkit.images import read_image
from toolkit.weights.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]


def png16(path: Path, samples: np.ndarray) -> None:
    """A 16-bit RGB(A) PNG written by hand (Pillow cannot write one), every row filter in turn, so
    a reader must undo Sub, Up, Average and Paeth on 16-bit samples."""
    h, w, c = samples.shape
    rows = np.ascontiguousarray(samples.astype(">u2")).view(np.uint8).reshape(h, -1).astype(np.int32)
    bpp, lines = 2 * c, []
    for y in range(h):
        x = rows[y]
        up = rows[y - 1] if y else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        corner = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        kind = y % 5
        guess = [0, left, up, (left + up) // 2, _paeth(left, up, corner)][kind]
        lines.append(bytes([kind]) + ((x - guess) % 256).astype(np.uint8).tobytes())

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(lines))) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny checkpoint, its x2 ONNX and ExecuTorch files, and the odd inputs of the sweep."""
    root = tmp_path_factory.mktemp("bad")
    save_checkpoint(build_model("pcarn-test"), root / "tiny.safetensors")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(root / "photo.png")
    result = run_cli(
        "export", "--model", "tiny.safetensors", "--formats", "onnx,executorch", "--precision", "fp32",
        "--scales", "2", "--input-size", "24x32", "--out", "files", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    onnx = (root / "files" / "pcarn-test_x2_fp32.onnx").read_bytes()
    (root / "UP.ONNX").write_bytes(onnx)
    (root / "corrupt.onnx").write_bytes(b"not a protobuf" * 50)
    pte = (root / "files" / "pcarn-test_x2_fp32.pte").read_bytes()
    (root / "half.pte").write_bytes(pte[: len(pte) // 2])
    (root / "photos").mkdir()
    Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(root / "photos" / "a.png")
    (root / "junk").mkdir()
    (root / "junk" / "a.png").write_text("not an image")
    return root


def one_line_error(result, code: int = 1) -> str:
    """The one message line on stderr (a progress bar drawn before the problem was found aside)."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [
        line for line in result.stderr.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line
    ]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


MODEL = ["--model", "tiny.safetensors"]
EXPORT = ["export", *MODEL, "--scales", "2", "--input-size", "24x32", "--out", "out"]

# (arguments, exit code, words the one line must hold); each run must leave no new file or folder
REFUSED = [
    # asked for files that would not be written
    ([*EXPORT, "--formats", "executorch", "--precision", "w8a16"], 1, "executorch does not take w8a16"),
    ([*EXPORT, "--formats", "onnx,executorch", "--precision", "fp16"], 1, "executorch does not take fp16"),
    ([*EXPORT, "--formats", "onnx,onnx"], 1, "format 'onnx' is named twice"),
    ([*EXPORT, "--formats", "coreml", "--exit-at-lr"], 1, "coreml does not take --exit-at-lr"),
    ([*EXPORT, "--formats", "executorch", "--shuffle", "conv-transpose"], 1, "does not take --shuffle"),
    ([*EXPORT, "--formats", "onnx", "--precision", "int8", "--calib", "junk"], 1, "junk/a.png"),
    ([*EXPORT[:-4], "--input-size", "3x3", "--out", "out"], 1, "at least 23x23"),
    ([*EXPORT[:-4], "--input-size", "100000x100000", "--out", "out"], 1, "GiB for one forward pass"),
    ([*EXPORT[:-4], "--input-size", "-4x8", "--out", "out"], 1, "input size must be positive, got '-4x8'"),
    (["bench", "files/pcarn-test_x2_fp32.onnx", "--repeats", "0"], 2, "--repeats: must be 1 or more"),
    (["bench", "files/pcarn-test_x2_fp32.onnx", "--warmup", "-1"], 2, "--warmup: must be 0 or more"),
    (["bench", "--runtimes", "coreml", "--variants", "pcarn-test"], 1, "coreml cannot run here"),
    # files that are not what their name says
    (["upscale", "photo.png", "o.png", "--scale", "2", "--model", "corrupt.onnx"], 1, "corrupt.onnx is not"),
    (["bench", "corrupt.onnx"], 1, "corrupt.onnx is not a readable onnx file"),
    (["profile", "corrupt.onnx"], 1, "corrupt.onnx is not a readable onnx file"),
    (["upscale", "photo.png", "o.png", "--scale", "2", "--model", "half.pte"], 1, "half.pte is not"),
    (["eval", "--model", "half.pte", "--scales", "2"], 1, "half.pte is not a readable executorch file"),
    # outputs that cannot be written, checked before the work
    (["upscale", "photo.png", "photo.png", "--scale", "2", *MODEL], 1, "is the input"),
    (["upscale", "photo.png", "files", "--scale", "2", *MODEL], 1, "cannot write files without a suffix"),
    (["info", "--json", "files"], 1, "files is a folder"),
    (["eval", *MODEL, "--scales", "2", "--json", "nowhere/x.json"], 1, "output folder does not exist"),
    # options that would be ignored
    (["upscale", "photo.png", "o.png", "--scale", "2", "--model", "UP.ONNX", "--tile", "64"], 1, "--tile"),
    (["upscale", "photo.png", "o.png", "--scale", "2", *MODEL, "--tile", "-7"], 2, "must be 0 or more"),
    # training: numbers, the run folder, resume state, the stage's needs
    (["train", "--data", "photos", "--out", "run", "--workers", "-1"], 2, "--workers: must be 0 or more"),
    (["train", "--data", "photos", "--out", "run", "--val-every", "0"], 2, "--val-every: must be 1"),
    (["train", "--data", "photos", "--out", "run", "--save-every", "0"], 2, "--save-every: must be 1"),
    (["train", "--data", "photos", "--out", "run", "--log-every", "0"], 2, "--log-every: must be 1"),
    (["train", "--data", "photos", "--out", "photo.png"], 1, "--out photo.png is a file"),
    (["train", "--data", "photos", "--out", "run", "--resume"], 1, "nothing to resume in run"),
    (["train", "--data", "photos", "--out", "run", "--stage", "gan"], 1, "pass --init"),
    (["train", "--data", "junk", "--out", "run", "--variant", "pcarn-test"], 1, "junk/a.png"),
    (["ship", "--name", "pcarn-m"], 1, "a training run folder"),
    # the second sweep
    (["export", "--model", "UP.ONNX", "--out", "out"], 1, "UP.ONNX is an exported file"),
    ([*EXPORT, "--formats", "onnx", "--precision", "int8", "--calib", "photo.png"], 1, "photo.png is a file"),
    (["bench", "files/pcarn-test_x2_fp32.onnx", "--report", "photo.png"], 1, "photo.png is a file"),
    (["deploy", "--models", "tiny.safetensors", "--out", "photo.png"], 1, "photo.png is a file"),
    (["deploy", "--models", ","], 1, "--models is empty"),
    (["train", "--data", "photos", "--out", "run", "--device", "tpu"], 1, "--device must be auto, cpu"),
    (["train", "--data", "photos", "--out", "run", "--init", "none.safetensors"], 1, "not found"),
]


@pytest.mark.parametrize(("args", "code", "words"), REFUSED, ids=[" ".join(r[0][:5]) for r in REFUSED])
def test_refused_in_one_line_leaving_nothing(folder, args, code, words):
    before = sorted(p.name for p in folder.iterdir())
    stamp = (folder / "photo.png").read_bytes()
    line = one_line_error(run_cli(*args, cwd=folder), code)
    assert words in line
    assert "internal error" not in line and "Error:" not in line  # no exception class names
    assert sorted(p.name for p in folder.iterdir()) == before
    assert (folder / "photo.png").read_bytes() == stamp


def test_an_uppercase_onnx_name_is_an_onnx_file(folder, tmp_path):
    result = run_cli(
        "upscale", "photo.png", str(tmp_path / "o.png"), "--scale", "2", "--model", "UP.ONNX", cwd=folder
    )
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "o.png").size == (120, 80)


def test_force_lets_the_output_replace_the_input(folder, tmp_path):
    target = tmp_path / "same.png"
    target.write_bytes((folder / "photo.png").read_bytes())
    result = run_cli("upscale", str(target), str(target), "--scale", "2", *MODEL, "--force", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert Image.open(target).size == (120, 80)


def test_bench_with_a_failed_case_exits_non_zero(folder, monkeypatch):
    import benchmarks.bench

    real = benchmarks.bench._run_cases

    def one_fails(cases, progress):
        results = real(cases, progress)
        return [{**results[-1], "status": "failed", "reason": "killed"}, *results[:-1]]

    monkeypatch.setattr(benchmarks.bench, "_run_cases", one_fails)
    result = run_cli("bench", "files/pcarn-test_x2_fp32.onnx", "--repeats", "1", "--warmup", "0", cwd=folder)
    assert result.returncode == 1
    assert "1 case(s) failed" in result.stderr
    assert "failed: killed" in result.stdout


def test_json_target_is_checked_before_the_work(folder, monkeypatch):
    import toolkit.metrics.evaluate

    def must_not_run(*args, **kwargs):
        raise AssertionError("the evaluation ran before its --json target was checked")

    monkeypatch.setattr(toolkit.metrics.evaluate, "evaluate", must_not_run)
    result = run_cli("eval", *MODEL, "--scales", "2", "--json", "nowhere/x.json", cwd=folder)
    assert "output folder does not exist: nowhere" in one_line_error(result)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # the camera was turned: display rotated 90 degrees clockwise
    image.save(tmp_path / "turned.png", exif=exif)
    decoded = read_image(tmp_path / "turned.png")
    expected = np.rot90(pixels, k=-1).astype(np.float32) / 255.0
    np.testing.assert_allclose(decoded.rgb, expected, atol=1e-6)


@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_colour_keeps_all_sixteen_bits(tmp_path, channels):
    samples = np.random.default_rng(2).integers(0, 65536, (13, 17, channels)).astype(np.uint16)
    png16(tmp_path / "deep.png", samples)
    decoded = read_image(tmp_path / "deep.png")
    np.testing.assert_allclose(decoded.rgb, samples[..., :3] / 65535.0, atol=1e-6)
    if channels == 4:
        np.testing.assert_allclose(decoded.alpha, samples[..., 3] / 65535.0, atol=1e-6)


def test_an_animation_is_refused_not_cut_to_its_first_frame(folder, tmp_path):
    frames = [Image.new("RGB", (16, 16), (i * 80, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    result = run_cli("upscale", str(tmp_path / "anim.gif"), str(tmp_path / "o.png"), *MODEL, cwd=folder)
    assert "holds 3 frames" in one_line_error(result)


def test_a_decompression_bomb_is_called_too_large(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")
    result = run_cli("upscale", str(tmp_path / "big.png"), str(tmp_path / "o.png"), *MODEL, cwd=folder)
    line = one_line_error(result)
    assert "decompression bombs" in line and "corrupt" not in line


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("pcarn ")


def _fresh_python(code: str, tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)


def test_help_and_argument_errors_do_not_import_torch(tmp_path):
    """What makes ``pcarn --help`` slow is torch's import (a second on a laptop); the parser and every
    command's help and usage errors must not need it."""
    commands = ["info", "models", "upscale", "train", "eval", "ship", "blend", "export", "bench", "deploy"]
    commands += ["profile", "import", "fetch", "int8-tune"]
    code = (
        "import sys\nfrom pcarn.cli.main import main\n"
        f"runs = [['--help'], ['--version'], ['upscale'], ['export', '--bogus']]\n"
        f"for argv in runs + [[c, '--help'] for c in {commands}]:\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    result = _fresh_python(code, tmp_path)
    assert result.stderr.strip().splitlines()[-1] == "NO-TORCH", result.stderr[-2000:]


def test_a_command_leaves_nothing_in_the_temporary_folder(folder, tmp_path):
    """ONNX Runtime writes ``.ses`` into $TMPDIR and torch its inductor cache; each command runs
    with a scratch folder of its own that goes when it ends, success or failure, and torch's cache
    is kept out of it (it would come back when a later command in the same process compiles)."""
    code = (
        "import sys\nfrom pcarn.cli.main import main\n"
        f"pte = main(['export', '--model', 'tiny.safetensors', '--formats', 'executorch', '--scales', '2', "
        f"'--input-size', '24x24', '--out', {str(tmp_path / 'pte')!r}])\n"
        f"ok = main(['upscale', 'photo.png', {str(tmp_path / 'o.png')!r}, '--scale', '2', "
        "'--model', 'files/pcarn-test_x2_fp32.onnx', '--quiet'])\n"
        "bad = main(['upscale', 'photo.png', 'o.png', '--scale', '2', '--model', 'half.pte'])\n"
        "print(pte, ok, bad)\n"
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=folder)
    assert result.stdout.split()[-3:] == ["0", "0", "1"], result.stderr[-2000:]
    assert sorted(os.listdir(scratch)) == []


def test_export_json_reports_every_file_it_was_asked_for(folder, tmp_path):
    result = run_cli(*EXPORT[:-1], str(tmp_path / "x"), "--formats", "onnx", "--precision", "fp32,fp16",
                     "--json", "-", cwd=folder)  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert [(e["precision"], e["status"]) for e in manifest["files"]] == [("fp32", "ok"), ("fp16", "ok")]
