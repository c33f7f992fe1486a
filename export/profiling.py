"""What the per-op profilers of the formats share (each format's own is ``export/<format>/profile.py``):
a median timer, conv labels and the summary every profile returns."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path


def timed(run: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``run`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def median_time(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    return statistics.median(timed(fn, warmup, repeats))


def conv_class(prefix: str, kh: int, kw: int, cin: int, cout: int, groups: int) -> str:
    label = f"grouped g={groups}" if groups > 1 else "dense"
    return f"{prefix} {kh}x{kw} {label} {cin}->{cout}"


def summary(path: Path, runtime: str, threads: int, whole: float, rows: list[dict], method: str) -> dict:
    total = sum(r["seconds"] for r in rows)
    for r in rows:
        r["share"] = r["seconds"] / total if total else 0.0
        r["macs_per_s"] = r["macs"] / r["seconds"] if r["macs"] and r["seconds"] else None
    rows.sort(key=lambda r: -r["seconds"])
    return {
        "file": str(path),
        "runtime": runtime,
        "threads": threads,
        "method": method,
        "whole_graph_s": whole,
        "sum_of_ops_s": total,
        "rows": rows,
    }
