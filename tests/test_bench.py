"""pcarn bench / deploy: real timings on tiny inputs, the ceiling, efficiency, claims, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.bench import Ceiling, claims, run_bench
from benchmarks.peers import PEERS
from benchmarks.report import write_report
from models import build_model
from models.multadds import multadds_at_hr
from toolkit.errors import PcarnError
from toolkit.weights.checkpoint import save_checkpoint


def test_peers_match_their_papers():
    srresnet = PEERS["srresnet"](4)
    assert sum(p.numel() for p in srresnet.parameters()) == pytest.approx(1.5e6, rel=0.04)
    assert multadds_at_hr(srresnet, 4) / 1e9 == pytest.approx(127.8, abs=0.1)
    rrdb = PEERS["rrdbnet"](4)
    assert sum(p.numel() for p in rrdb.parameters()) == pytest.approx(16.7e6, rel=0.01)


TINY_CEILING = Ceiling(gemm_n=96, conv_size=(12, 16), repeats=4)


@pytest.fixture(scope="module")
def small_run():
    return run_bench(
        variants=["pcarn-test"],
        scales=[4],
        runtimes=["torch", "onnx", "coreml"],
        threads=1,
        repeats=2,
        warmup=1,
        peers=["srresnet"],
        input_size=(8, 10),
        progress=False,
        ceiling=TINY_CEILING,
    )


def test_bench_rows_ceiling_and_efficiency(small_run):
    machine = small_run["machine"]
    assert machine["ceiling_macs_per_s"] > 0 and machine["cores"] >= 1 and machine["cpu"]
    rows = small_run["rows"]
    assert {(r["model"], r["runtime"]) for r in rows} == {
        (m, rt) for m in ("pcarn-test", "srresnet") for rt in ("torch", "onnx")
    }
    for r in rows:
        assert r["min_s"] <= r["median_s"] <= r["p90_s"]
        assert r["multadds"] > 0 and r["params"] > 0 and r["threads"] == 1 and r["peak_rss_mb"] > 0
        assert r["efficiency"] == pytest.approx(r["multadds"] / r["median_s"] / machine["ceiling_macs_per_s"])
    for c in small_run["ceilings"]:  # a ceiling is the fastest of many runs, not a median
        assert c["repeats"] == TINY_CEILING.repeats and c["macs_per_s"] == pytest.approx(
            c["multadds"] / c["min_s"]
        )
    assert {(c["model"], c["runtime"]) for c in small_run["ceilings"]} == {
        ("ceiling-gemm", "torch"),
        ("ceiling-conv", "torch"),
        ("ceiling-conv", "onnx"),
    }
    gemm = next(c for c in small_run["ceilings"] if c["model"] == "ceiling-gemm")
    assert gemm["multadds"] == 96**3
    # Core ML cannot run off macOS: said once, from the format's own reason, and never tried per case.
    coreml = [u for u in small_run["unavailable"] if u["runtime"] == "coreml"]
    assert len(coreml) == 1 and coreml[0]["reason"] == "Core ML runs only on macOS"


def test_report_files(small_run, tmp_path):
    paths = write_report(small_run, tmp_path, "pcarn bench --test")
    data = json.loads(paths["json"].read_text())
    assert data["command"] == "pcarn bench --test" and data["rows"]
    assert paths["plot"].stat().st_size > 1000
    report = paths["report"].read_text()
    for claim in small_run["claims"]:  # every claim is in the report with this run's value
        assert f"{claim['claim']}: paper {claim['paper']}, ours {claim['ours']}" in report
    assert "PCARN-M faster than PCARN" not in report  # no such claim without both variants in the run
    assert any("GPU" in c["claim"] for c in small_run["claims"])


def test_claims_from_rows():
    def row(model, runtime, seconds, multadds):
        return {
            "model": model,
            "scale": 4,
            "runtime": runtime,
            "precision": "fp32",
            "median_s": seconds,
            "multadds": multadds,
            "efficiency": 0.6,
            "input_size": [180, 320],
        }

    rows = [
        row("pcarn", "onnx", 2.0, 90.9e9),
        row("pcarn-m", "onnx", 1.0, 32.5e9),
        row("srresnet", "onnx", 3.0, 127.8e9),
    ]
    table = {c["claim"]: c for c in claims(rows)}
    speed = table["PCARN-M faster than PCARN on onnx (x4)"]
    assert speed["holds"] and speed["ours"] == "2.00x" and speed["target_met"]
    assert table["PCARN faster than SRResNet on CPU (x4, best runtime each)"]["holds"]
    assert table["PCARN-M the fastest of all on CPU (x4)"]["holds"]
    assert not table["pcarn efficiency on its best runtime (onnx, x4)"]["target_met"]


def test_deploy_on_two_tiny_checkpoints(tmp_path):
    """Two models: exported in two processes at once, then checked, compared and timed together."""
    from pcarn.cli.deployment import deploy

    names = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        names.append(str(tmp_path / f"tiny{seed}.safetensors"))
        save_checkpoint(build_model("pcarn-test", scales=(2,)), Path(names[-1]))
    summary = deploy(
        names,
        tmp_path / "out",
        scales=[2],
        threads=1,
        repeats=1,
        warmup=0,
        input_size=(16, 16),
        progress=False,
        ceiling=TINY_CEILING,
        precisions=["fp32"],  # fp16: tests/test_export.py; int8: tests/test_int8.py
    )
    assert summary["all_passed"]
    for name in names:  # onnx, coreml, tflite, executorch
        entry = summary["models"][name]
        assert entry["failed"] == [] and entry["files"] == 4 and 0 <= entry["worst_fp32_abs"] <= 1e-4
        assert set(entry["seconds"]) == {"onnx", "coreml", "tflite", "executorch"}
        # What a user sees of the files' 8-bit outputs against PyTorch's on a real photo.
        assert entry["vs_pytorch"]["fp32"]["psnr_y"] >= 50 and entry["vs_pytorch"]["fp32"]["lpips"] < 1e-3
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.count("4 files") == 2 and "Latency of the exported files" in report
    bench = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert {r["runtime"] for r in bench["rows"]} == {"onnx", "tflite", "executorch"}
    assert len(bench["rows"]) == 2 * 3  # every runnable file of both models timed
    assert {r["label"] for r in bench["rows"]} == {"tiny0", "tiny1"}  # told apart by folder


def torch_case(**fields) -> dict:
    """One torch case of the tiny model, as run_bench writes it; ``fields`` override."""
    spec = {
        "model": "pcarn-test",
        "scale": 4,
        "runtime": "torch",
        "precision": "fp32",
        "input_size": [8, 10],
        "threads": 1,
        "warmup": 0,
        "repeats": 1,
    }
    return {**spec, **fields}


def test_case_memory_is_its_own_not_its_parents():
    """A case launched by a big parent (as pcarn deploy is) reports its own peak memory."""
    from benchmarks.bench import _run_case

    ballast = np.ones(800 * 2**20 // 8)  # 800 MB resident in this (parent) process
    row = _run_case(torch_case())
    assert row["status"] == "ok" and 0 < row["peak_rss_mb"] < 700, row.get("peak_rss_mb")
    del ballast


def test_case_server_reports_a_timeout_and_serves_the_next_case(tmp_path, monkeypatch):
    import tempfile

    from benchmarks.bench import CaseServer

    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where a case would put its files
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # and where the server's scratch goes
    spec = torch_case(model="pcarn", input_size=[720, 1280], repeats=20)
    server = CaseServer()
    try:
        slow = server.run(spec, timeout=1)
        assert list(tmp_path.iterdir()) == []  # the killed case's scratch went with it
        assert slow["status"] == "failed" and "timed out" in slow["reason"]
        quick = server.run({**spec, "model": "pcarn-test", "input_size": [8, 8], "repeats": 1})
        assert quick["status"] == "ok" and quick["median_s"] > 0
        unknown = server.run({**spec, "model": "nope"})
        assert unknown["status"] == "unavailable" and "nope" in unknown["reason"]
    finally:
        server.close()


def test_bench_and_profile_time_the_files_pcarn_export_writes(tmp_path, monkeypatch):
    """What is benchmarked is what ships: the harness's file is byte for byte the exporter's."""
    from benchmarks import prepare
    from export.formats import FORMATS
    from export.pipeline import export_all
    from toolkit.weights.loading import load_any

    save_checkpoint(build_model("pcarn-test", scales=(2,)), tmp_path / "tiny.safetensors")
    loaded = load_any(tmp_path / "tiny.safetensors")
    shipped = export_all(
        loaded.model,
        tmp_path / "exported",
        formats=["onnx", "tflite"],
        scales=[2],
        precisions=["fp32"],
        input_size=(12, 16),
        provenance=loaded.provenance,
        progress=False,
    )
    for entry in shipped["files"]:
        fmt = FORMATS[entry["format"]]
        timed = prepare.model_file(
            loaded.model, fmt, 2, (12, 16), tmp_path / fmt.name, provenance=loaded.provenance
        )
        assert timed.read_bytes() == (tmp_path / "exported" / entry["path"]).read_bytes()
        # The comparison can fail: another provenance in the metadata alone changes the bytes.
        other = prepare.model_file(loaded.model, fmt, 2, (12, 16), tmp_path / "other", provenance={})
        assert other.read_bytes() != timed.read_bytes()
    # ...and `pcarn bench` / `pcarn profile` reach their files through that same exporter call.
    calls = []
    real = prepare.export_file
    monkeypatch.setattr(prepare, "export_file", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    prepare.prepare("onnx", loaded.model, 2, (12, 16), threads=1, workdir=tmp_path / "timed")()
    (_, fmt, scale, precision, _), options = calls[0]
    assert (fmt.name, scale, precision, options["input_size"]) == ("onnx", 2, "fp32", (12, 16))


def test_thread_counts_and_tiles_each_with_their_own_ceiling():
    report = run_bench(
        variants=["pcarn-test"],
        scales=[2],
        runtimes=["torch"],
        threads=[2, 1],
        repeats=1,
        warmup=0,
        peers=[],
        input_size=(12, 16),
        tiles=[20],
        progress=False,
        ceiling=TINY_CEILING,
    )
    machine = report["machine"]
    assert machine["thread_counts"] == [1, 2] and machine["threads"] == 2
    rows = {(r["threads"], tuple(r["input_size"])): r for r in report["rows"]}
    assert set(rows) == {(1, (12, 16)), (1, (20, 20)), (2, (12, 16)), (2, (20, 20))}
    for (count, (h, w)), r in rows.items():
        ceiling = machine["ceilings_by_threads"][str(count)]
        assert r["efficiency"] == pytest.approx(r["macs_per_s"] / ceiling)
        assert r["ms_per_output_mp"] == pytest.approx(1000 * r["median_s"] / (h * w * 4 / 1e6))
        assert r.get("tile", False) == ((h, w) == (20, 20))
    with pytest.raises(PcarnError, match="thread counts"):
        run_bench(variants=["pcarn-test"], scales=[2], runtimes=["torch"], threads=[0], repeats=1, warmup=0)


def test_bench_times_the_folded_exit_when_asked():
    report = run_bench(
        variants=["pcarn-test"],
        scales=[4],
        runtimes=["onnx"],
        threads=1,
        repeats=1,
        warmup=0,
        peers=[],
        input_size=(12, 16),
        progress=False,
        ceiling=TINY_CEILING,
        options={"exit_at_lr": True},
    )
    (row,) = report["rows"]
    assert row["status"] == "ok" and row["exit_at_lr"] is True and row["median_s"] > 0
    assert not any(c.get("exit_at_lr") for c in report["ceilings"])


def test_plot_labels_close_together_are_stacked_not_overlapping():
    from benchmarks.report import _label_positions

    placed = _label_positions(
        [("a x2", 30.0, 0.50), ("b x2", 31.0, 0.52), ("c x4", 90.0, 1.2), ("d", 30.5, 0.51)]
    )
    lines = {text: line for text, _, _, line in placed}
    assert sorted(lines[t] for t in ("a x2", "b x2", "d")) == [0, 1, 2]  # one line each
    assert lines["c x4"] == 0  # alone in its corner


def test_recorded_commands_can_be_pasted_back(tmp_path):
    """An empty argument (``--peers ''``) survives into the committed command, quoted."""
    from benchmarks.report import save_rows

    save_rows(tmp_path / "rows.json", "benchmarks.rewrites", ["--variants", "pcarn", "--peers", ""], [])
    command = json.loads((tmp_path / "rows.json").read_text())["command"]
    assert command == "python -m benchmarks.rewrites --variants pcarn --peers ''"


def test_dynamic_files_are_timed_at_each_tile_size(tmp_path):
    """A --dynamic file is timed at its own size (an ONNX one has none: the 720p LR size) and at each
    --tiles size (a bounded .pte refuses a size above its bound in its own row); a fixed-size file
    only at its size."""
    from export.pipeline import export_all

    model = build_model("pcarn-test", scales=(2,))
    for dynamic, folder in ((True, "dyn"), (False, "fixed")):
        export_all(
            model,
            tmp_path / folder,
            formats=["onnx", "executorch"],
            scales=[2],
            precisions=["fp32"],
            input_size=(16, 20),
            provenance={"variant": "pcarn-test"},
            options={"dynamic": dynamic},
            progress=False,
        )
    files = [tmp_path / f / f"pcarn-test_x2_fp32{s}" for f in ("dyn", "fixed") for s in (".onnx", ".pte")]
    report = run_bench(
        variants=[],
        peers=[],
        files=files,
        scales=[2],
        runtimes=["onnx", "executorch"],
        threads=1,
        repeats=1,
        warmup=0,
        progress=False,
        ceiling=TINY_CEILING,
        tiles=[12, 24],
    )
    sizes = sorted(
        (Path(r["file"]).parent.name, Path(r["file"]).suffix, tuple(r["input_size"])) for r in report["rows"]
    )
    assert sizes == [
        ("dyn", ".onnx", (12, 12)), ("dyn", ".onnx", (24, 24)), ("dyn", ".onnx", (360, 640)),
        ("dyn", ".pte", (12, 12)), ("dyn", ".pte", (16, 20)),
        ("fixed", ".onnx", (16, 20)), ("fixed", ".pte", (16, 20)),
    ]  # fmt: skip
    assert all("ms_per_output_mp" in r for r in report["rows"] if r.get("tile"))
    above = [u for u in report["unavailable"] if u.get("file", "").endswith(".pte")]
    assert len(above) == 1 and "--dynamic bound" in above[0]["reason"] and report["failed"] == 0
