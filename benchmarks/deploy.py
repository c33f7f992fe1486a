"""``pcarn deploy``: the shipped models, exported to every format, head and precision, checked,
compared with PyTorch and timed, in one report folder."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bench import DEFAULT_CEILING, Ceiling, run_bench
from benchmarks.report import plot, table
from export.formats import FORMATS, PRECISIONS
from export.pipeline import export_all
from toolkit.errors import PcarnError
from toolkit.loading import load_any


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
    precisions: list[str] = PRECISIONS,
    calib: str | Path | None = None,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    summary = {"models": {}, "bench": None}
    files: list[Path] = []
    for name in models:
        try:
            loaded = load_any(name, quiet=not progress)
        except PcarnError as exc:
            summary["models"][name] = {"all_passed": False, "files": 0, "note": f"not loaded: {exc}"}
            continue
        folder = Path(name).stem if Path(name).suffix else name
        manifest = export_all(
            loaded.model,
            out / folder,
            formats=list(FORMATS),
            scales=scales,
            precisions=list(precisions),
            input_size=input_size,
            provenance=loaded.provenance,
            progress=progress,
            calib=calib,
        )
        ran = [e for e in manifest["files"] if e.get("parity", {}).get("ran")]
        summary["models"][name] = {
            "all_passed": manifest["all_passed"],
            "files": len(manifest["files"]),
            "failed": [
                f"{e['format']} x{e['scale']} {e['precision']}"
                for e in manifest["files"]
                if not e.get("passed")
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
            "note": loaded.note,
            "folder": folder,
        }
        files += [
            out / folder / e["path"]
            for e in manifest["files"]
            if e["status"] == "ok" and FORMATS[e["format"]].runnable()[0]
        ]
    bench = run_bench(
        variants=[],
        scales=scales,
        runtimes=[name for name, fmt in FORMATS.items() if fmt.runnable()[0]],
        threads=threads,
        repeats=repeats,
        warmup=warmup,
        peers=[],
        files=files,
        progress=progress,
        ceiling=ceiling,
    )
    summary["bench"] = bench
    (out / "bench.json").write_text(json.dumps(bench, indent=2) + "\n")
    plot(bench, out / "latency_vs_multadds.png")
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
    lines += [
        "",
        "## Latency of the exported files",
        "",
        "```",
        table(bench),
        "```",
        "",
        "![latency vs MultAdds](latency_vs_multadds.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    summary["all_passed"] = all(m["all_passed"] for m in summary["models"].values())
    return summary


def lpips_text(value: float | None) -> str:
    return "n/a (output under 31 px)" if value is None else f"{value:.4f}"
