"""Bench, profile and the before/after tool clean up after themselves: no temporary folder is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

from test_data import write_photos

import benchmarks.rewrites as rewrites
import export.common
from benchmarks.bench import Ceiling, run_bench
from benchmarks.op_profile import profile_variants


def test_no_temporary_folder_is_left_behind(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the case server, a child process, reads it
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    run_bench(
        variants=["pcarn-test"],
        scales=[2],
        runtimes=["onnx", "tflite"],
        threads=1,
        repeats=1,
        warmup=0,
        peers=[],
        input_size=(8, 12),
        progress=False,
        ceiling=Ceiling(gemm_n=64, conv_size=(8, 8), repeats=1),
        precisions=["fp32"],
    )
    monkeypatch.setattr(export.common, "default_input_size", lambda scale: (8, 12))
    profile_variants(["pcarn-test"], 2, ["onnx", "tflite"], threads=1, repeats=1, warmup=0)
    monkeypatch.setattr(rewrites, "default_input_size", lambda scale: (8, 12))
    rewrites.compare("pcarn-test", 2, "onnx", threads=1, repeats=1, warmup=0, rewrite="exit-at-lr")
    # Libraries keep caches there (torch inductor's, ONNX Runtime's ``.ses``); ours are ``pcarn-*``
    # folders and tempfile's default ``tmp*`` names.
    ours = sorted(p.name for p in scratch.iterdir() if p.name.startswith(("pcarn-", "tmp")))
    assert ours == []


def test_a_terminated_command_removes_its_scratch_folder(tmp_path):
    """``kill PID`` (SIGTERM) on a long ``pcarn train`` exits 143 and leaves no ``pcarn-train-*``."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    write_photos(tmp_path / "photos", 2, size=(72, 60))
    command = [sys.executable, "-m", "pcarn", "train", "--variant", "pcarn-test", "--data", "photos"]
    command += ["--out", "run", "--steps", "100000", "--batch", "2", "--patch", "8", "--save-every", "1"]
    child = subprocess.Popen(
        [*command, "--workers", "0", "--threads", "1", "--quiet"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(scratch)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "state.pt").exists() and child.poll() is None:  # training has begun
        assert time.monotonic() < deadline, "pcarn train did not start"
        time.sleep(0.2)
    assert any(p.name.startswith("pcarn-train-") for p in scratch.iterdir())
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 128 + signal.SIGTERM, err
    assert [p.name for p in scratch.iterdir() if p.name.startswith("pcarn-")] == []
