"""Bench, profile and the before/after tool clean up after themselves: no temporary folder is left."""

from __future__ import annotations

import tempfile

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
