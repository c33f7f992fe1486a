"""What ``pcarn deploy`` does: the shipped models exported to every format, head and precision in
parallel processes, checked, compared with PyTorch and timed, in one report folder; the result is
one summary object, rendered once."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import torch

from benchmarks.bench import DEFAULT_CEILING, Ceiling, run_bench
from benchmarks.report import plot, table
from export.accelerators import sources as accelerator_sources
from export.accelerators import table as accelerator_table
from export.formats import DEFAULT_FORMATS, FORMATS
from export.pipeline import RECALLED, export_all
from pcarn.cli.flags import choice_store
from toolkit.errors import PcarnError
from toolkit.weights.loading import load_any


def deploy(
    models: list[str],
    out: Path,
    *,
    scales: list[int],
    threads: int,
    repeats: int,
    warmup: int,
    input_size: tuple[int, int] | None = None,
    progress: bool = True,
    ceiling: Ceiling = DEFAULT_CEILING,
    precisions: list[str] | None = None,
    calib: str | Path | None = None,
    int8_choices: str = "shipped",
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    summary = {"models": {}, "bench": None}
    files: list[Path] = []
    settings = {
        "scales": scales,
        "precisions": None if precisions is None else list(precisions),
        "input_size": input_size,
        "progress": progress,
        "calib": calib,
        "int8_choices": int8_choices,
    }
    started = time.perf_counter()
    exported = _export_models(models, out, settings)
    summary["seconds"] = {"export": round(time.perf_counter() - started, 1)}
    for name, result in exported.items():
        if "error" in result:
            summary["models"][name] = {
                "all_passed": False,
                "files": 0,
                "note": f"not loaded: {result['error']}",
            }
            continue
        manifest, folder = result["manifest"], result["folder"]
        summary["models"][name] = _model_summary(manifest, result["note"], folder)
        files += [
            out / folder / e["path"]
            for e in manifest["files"]
            if e["status"] == "ok" and FORMATS[e["format"]].runnable()[0]
        ]
    started = time.perf_counter()
    bench = run_bench(
        variants=[],
        scales=scales,
        runtimes=[name for name in DEFAULT_FORMATS if FORMATS[name].runnable()[0]],
        threads=threads,
        repeats=repeats,
        warmup=warmup,
        peers=[],
        files=files,
        progress=progress,
        ceiling=ceiling,
    )
    for row in bench["rows"] + bench["unavailable"]:  # two models of one variant: tell them apart
        if row.get("file"):
            row["label"] = Path(row["file"]).parent.name
    summary["bench"] = bench
    summary["seconds"]["bench"] = round(time.perf_counter() - started, 1)
    (out / "bench.json").write_text(json.dumps(bench, indent=2) + "\n")
    plot(bench, out / "latency_vs_multadds.png")
    # every file passed its checks and every timing case ran
    summary["all_passed"] = all(m["all_passed"] for m in summary["models"].values()) and not bench["failed"]
    (out / "report.md").write_text(render_report(summary))
    return summary


def render_report(summary: dict) -> str:
    """The deploy report (Markdown), from ``deploy``'s result; the CLI prints the same text."""
    bench = summary["bench"]
    lines = ["# Deployment report", ""]
    for name, m in summary["models"].items():
        lines.append(
            f"- `{name}`: {m['files']} files, all checks and parities passed: "
            f"**{'yes' if m['all_passed'] else 'no'}** (details: `{m.get('folder', name)}/report.md`)"
            + (f" — {m['note']}" if m.get("note") else "")
        )
        for precision, v in (m.get("vs_pytorch") or {}).items():
            lines.append(
                f"  - {precision} files against PyTorch on a real photo (worst file): PSNR-Y "
                f"{v['psnr_y']:.1f} dB, LPIPS {lpips_text(v['lpips'])}"
            )
        if m.get("int8_cost_db") is not None:
            note = (m.get("calibration") or {}).get("note")
            lines.append(
                f"  - int8 quantization cost on the scikit-image photos (worst file): "
                f"{m['int8_cost_db']:+.3f} dB PSNR-Y" + (f" ({note})" if note else "")
            )
        if (kept := m.get("int8_recalled")) and kept["files"]:
            lines.append(
                f"  - of {kept['files']} int8 files, {kept['choices']} took their float/16-bit choice and "
                f"{kept['ranges']} their calibrated ranges from an earlier run (`models/int8-choices.json`)"
            )
    spent = summary["seconds"]
    lines += [
        "",
        f"Time: exports, checks and parity {spent['export']:.0f} s (the models in parallel processes), "
        f"timing {spent['bench']:.0f} s. Per model and format (export + checks + parity, s): "
        + "; ".join(
            f"{m.get('folder', name)}: " + ", ".join(f"{k} {v:.0f}" for k, v in m["seconds"].items())
            for name, m in summary["models"].items()
            if m.get("seconds")
        )
        + ".",
        "",
        "## Latency of the exported files",
        "",
        *(
            [f"**{bench['failed']} timing case(s) failed** (rows marked failed below).", ""]
            if bench["failed"]
            else []
        ),
        "```",
        table(bench),
        "```",
        "",
        "![latency vs MultAdds](latency_vs_multadds.png)",
        "",
    ]
    rows = [row for m in summary["models"].values() for row in m.get("accelerators", [])]
    if rows:
        lines += ["## Which phone accelerator each file can run on", "", accelerator_table(rows), ""]
        lines += ["Rules from: " + "; ".join(accelerator_sources(rows)) + ".", ""]
    return "\n".join(lines)


def _folder(name: str) -> str:
    return Path(name).stem if Path(name).suffix else name


def _export_one(name: str, out: Path, settings: dict, position: int, threads: int) -> dict:
    """One model's ``pcarn export`` into ``out/<name>/`` (runs in its own process)."""
    torch.set_num_threads(threads)
    try:
        loaded = load_any(name, quiet=not settings["progress"])
    except PcarnError as exc:
        return {"error": str(exc)}
    folder = _folder(name)
    # every other process takes the formats in reverse order, so the memory peaks of the processes
    # (ONNX Runtime's int8 calibration holds ~12 GB for a PCARN-M x2 head) do not coincide
    formats = list(DEFAULT_FORMATS) if position % 2 == 0 else list(reversed(DEFAULT_FORMATS))
    manifest = export_all(
        loaded.model,
        out / folder,
        formats=formats,
        scales=settings["scales"],
        precisions=settings["precisions"],
        input_size=settings["input_size"],
        provenance=loaded.provenance,
        progress=settings["progress"],
        calib=settings["calib"],
        bar_position=position,
        choices=choice_store(settings["int8_choices"]),
    )
    return {"manifest": manifest, "note": loaded.note, "folder": folder}


def _export_models(models: list[str], out: Path, settings: dict) -> dict[str, dict]:
    """Each model exported in its own process, as many at once as there are cores: most of an
    export is single-threaded converter work, so two models on two cores take little more than one.
    The processes are spawned (a fork of a process that has run torch's thread pool can hang)."""
    workers = max(1, min(len(models), os.cpu_count() or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    if workers == 1:
        return {name: _export_one(name, out, settings, 0, threads) for name in models}
    context = multiprocessing.get_context("spawn")
    results, lost = {}, []
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            name: pool.submit(_export_one, name, out, settings, index % workers, threads)
            for index, name in enumerate(models)
        }
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except BrokenProcessPool:  # a worker killed (e.g. out of memory) takes the pool with it
                lost.append(name)
    for name in lost:  # nothing lost: those models again, one at a time, with every core
        print(f"deploy: the export process of {name} died; exporting it again on its own", flush=True)
        results[name] = _export_one(name, out, settings, 0, os.cpu_count() or 1)
    return {name: results[name] for name in models}


def _model_summary(manifest: dict, note: str | None, folder: str) -> dict:
    ran = [e for e in manifest["files"] if e.get("parity", {}).get("ran")]
    return {
        "all_passed": manifest["all_passed"],
        "files": len(manifest["files"]),
        "failed": [
            f"{e['format']} x{e['scale']} {e['precision']}" for e in manifest["files"] if not e.get("passed")
        ],
        "worst_fp32_abs": max(
            (e["parity"]["max_abs"] for e in ran if e["precision"] == "fp32"), default=None
        ),
        # Against PyTorch's output on a real photo, 8-bit, per precision: the worst file of each.
        "vs_pytorch": {
            precision: {
                "psnr_y": min(e["parity"]["psnr_y_8bit"] for e in rows),
                "lpips": max(
                    (e["parity"]["lpips"] for e in rows if e["parity"]["lpips"] is not None), default=None
                ),
            }
            for precision in sorted({e["precision"] for e in ran})
            if (rows := [e for e in ran if e["precision"] == precision])
        },
        # int8: the picture's loss against fp32 PyTorch on the validation photos (worst file)
        "int8_cost_db": max(
            (e["parity"]["quantization"]["cost_db"] for e in ran if "quantization" in e["parity"]),
            default=None,
        ),
        "calibration": manifest.get("calibration"),
        "note": note,
        "folder": folder,
        # each file's verdict per phone accelerator, for the report's table
        "accelerators": [
            {"path": f"{folder}/{e['path']}", "accelerators": e["accelerators"]}
            for e in manifest["files"]
            if e.get("accelerators")
        ],
        # where the time went, per format (export, checks, parity), for the deploy report
        "seconds": {
            fmt: round(
                sum(
                    e.get(k, 0)
                    for e in manifest["files"]
                    if e["format"] == fmt
                    for k in ("export_seconds", "check_seconds", "parity_seconds")
                ),
                1,
            )
            for fmt in dict.fromkeys(e["format"] for e in manifest["files"])
        },
        # int8 work taken from models/int8-choices.json instead of redone (export/choice_store.py)
        "int8_recalled": {
            "files": sum("ranges" in e for e in manifest["files"]),
            "choices": sum(e.get("choice") == RECALLED for e in manifest["files"]),
            "ranges": sum(e.get("ranges") == RECALLED for e in manifest["files"]),
        },
    }


def lpips_text(value: float | None) -> str:
    return "n/a (output under 31 px)" if value is None else f"{value:.4f}"
