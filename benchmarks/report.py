"""Human outputs of a benchmark run: a terminal table, ``report.md`` and a latency-vs-MultAdds plot."""

from __future__ import annotations

import argparse
import json
import math
import shlex
from pathlib import Path


def save_rows(path: str | Path, script: str, argv: list[str] | None, rows: list) -> None:
    """A standalone benchmark script's rows as JSON, with the command that made them."""
    import sys

    command = f"python -m {script} " + shlex.join(sys.argv[1:] if argv is None else argv)
    Path(path).write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")


def before_after_parser(description: str) -> argparse.ArgumentParser:
    """The options every before/after benchmark of a graph change takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--variants", default="pcarn,pcarn-m")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", help="JSON rows with the command that made them")
    return parser


def _name(row: dict) -> str:
    """A row's model as shown: its label (``pcarn deploy``: the model's folder) or its variant."""
    return row.get("label") or row["model"]


def table(report: dict) -> str:
    m = report["machine"]
    ceiling = m["ceiling_macs_per_s"]
    lines = [
        f"CPU: {m['cpu']} ({m['cores']} cores, {m['threads']} threads); ceiling "
        f"{ceiling / 1e9:.1f} GMAC/s ({m['ceiling_source']})"
        if ceiling
        else "ceiling: not measured",
        f"{'model':10} {'scale':>5} {'runtime':9} {'prec.':5} {'thr':>3} {'LR input':>9} {'median s':>9} "
        f"{'min s':>8} {'p90 s':>8} {'ms/MP':>6} {'GMAC':>7} {'GMAC/s':>7} {'eff.':>5} {'RSS MB':>7}",
    ]

    def order(r: dict) -> tuple:
        return (r["scale"], _name(r), r["runtime"], r.get("precision", ""), r["threads"], r["input_size"])

    for r in sorted(report["rows"], key=order):
        eff = f"{100 * r['efficiency']:4.0f}%" if r.get("efficiency") is not None else "   - "
        size = "x".join(str(v) for v in r["input_size"])
        per_mp = f"{r['ms_per_output_mp']:6.0f}" if "ms_per_output_mp" in r else "     -"
        lines.append(
            f"{_name(r):10} {'x' + str(r['scale']):>5} {r['runtime']:9} {r.get('precision', 'fp32'):5} "
            f"{r['threads']:3} {size:>9} {r['median_s']:9.3f} "
            f"{r['min_s']:8.3f} {r['p90_s']:8.3f} {per_mp} {r['multadds'] / 1e9:7.1f} "
            f"{r['macs_per_s'] / 1e9:7.1f} {eff} {r['peak_rss_mb']:7.0f}"
        )
    for u in report["unavailable"]:
        lines.append(
            f"{_name(u):10} {'x' + str(u.get('scale', '-')):>5} {u['runtime']:9} {u['status']}: "
            f"{u.get('reason', '')}"
        )
    lines.append("")
    lines.append("claims:")
    for c in report["claims"]:
        verdict = {True: "holds", False: "does not hold", None: "-"}[c["holds"]]
        target = f"; target {c['target']}: {'met' if c['target_met'] else 'missed'}" if "target" in c else ""
        lines.append(f"  {c['claim']}: paper {c['paper']}, ours {c['ours']} -> {verdict}{target}")
    return "\n".join(lines)


MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}


def _label_positions(points: list[tuple[str, float, float]]) -> list[tuple[str, float, float, int]]:
    """One label per (x, y) point, stacked downwards (a line each) where earlier labels sit close by
    on the log-log axes, so none overlap."""
    placed: list[tuple[float, float, int]] = []
    out = []
    for text, x, y in sorted(points, key=lambda p: (-p[2], p[1])):
        lx, ly = math.log10(x), math.log10(y)
        near = [line for px, py, line in placed if abs(px - lx) < 0.25 and abs(py - ly) < 0.12]
        line = next(i for i in range(len(near) + 1) if i not in near)
        placed.append((lx, ly, line))
        out.append((text, x, y, line))
    return out


def plot(report: dict, path: Path) -> Path | None:
    """Latency against MultAdds: colour = runtime, marker = precision, area ~ parameters; one label
    per model and scale, at its fastest point."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 6))
    top = report["machine"]["threads"]  # the 720p rows at all threads, as the claims read them
    rows = [r for r in report["rows"] if r["threads"] == top and not r.get("tile")]
    runtimes = sorted({r["runtime"] for r in rows})
    colors = dict(zip(runtimes, plt.cm.tab10.colors, strict=False))
    fastest: dict[tuple[str, int], dict] = {}
    for r in rows:
        precision = r.get("precision", "fp32")
        ax.scatter(
            r["multadds"] / 1e9,
            r["median_s"],
            s=max(20, r.get("params", 1e5) / 2e4),
            alpha=0.6,
            color=colors[r["runtime"]],
            marker=MARKERS.get(precision, "D"),
            edgecolors="black",
            linewidths=0.5,
        )
        key = (_name(r), r["scale"])
        if key not in fastest or r["median_s"] < fastest[key]["median_s"]:
            fastest[key] = r
    points = [
        (f"{name} x{scale}", r["multadds"] / 1e9, r["median_s"]) for (name, scale), r in fastest.items()
    ]
    for text, x, y, line in _label_positions(points):
        ax.annotate(text, (x, y), fontsize=7, xytext=(5, -3 - 9 * line), textcoords="offset points")
    for rt, color in colors.items():
        ax.scatter([], [], color=color, marker="o", label=rt)
    for precision in sorted({r.get("precision", "fp32") for r in rows}):
        ax.scatter(
            [], [], color="white", edgecolors="black", marker=MARKERS.get(precision, "D"), label=precision
        )
    ceiling = report["machine"]["ceiling_macs_per_s"]
    if ceiling:
        xs = [r["multadds"] / 1e9 for r in report["rows"]]
        if xs:
            lo, hi = min(xs), max(xs)
            ax.plot([lo, hi], [lo * 1e9 / ceiling, hi * 1e9 / ceiling], "k--", lw=0.8, label="at the ceiling")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MultAdds per image (G), 720p output")
    ax.set_ylabel("median latency (s)")
    ax.set_title(
        f"Latency vs MultAdds on {report['machine']['cpu']} ({report['machine']['threads']} threads)",
        fontsize=9,
    )
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: dict, folder: Path, command: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / "bench.json",
        "report": folder / "report.md",
        "plot": folder / "latency_vs_multadds.png",
    }
    paths["json"].write_text(json.dumps({**report, "command": command}, indent=2) + "\n")
    plot(report, paths["plot"])
    body = [
        "# Benchmark report",
        "",
        f"Command: `{command}`",
        "",
        "```",
        table(report),
        "```",
        "",
        f"![latency vs MultAdds]({paths['plot'].name})",
        "",
        "Peers (SRResNet, RRDBNet) use random weights: latency does not depend on the values.",
        "",
    ]
    paths["report"].write_text("\n".join(body))
    return paths
