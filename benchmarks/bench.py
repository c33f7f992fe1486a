"""``pcarn bench``: latency at 720p output across runtimes, the machine's ceiling, and the paper's claims.

Every case runs in its own process (``benchmarks/case.py``, forked from a server that imported it
once) with the same fixed thread count. The
ceiling is the best multiply-add rate this machine reaches in the same run: a large GEMM and a dense
64->64 3x3 conv at 320x180 in each runtime, each the fastest of at least 15 runs (as the median of
a few runs, the GEMM alone measured 111 to 150 GMAC/s across runs on this shared machine).
Efficiency = MultAdds / (median latency x ceiling).
"""

from __future__ import annotations

import json
import os
import platform
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from benchmarks.case import CONV_SIZE, GEMM_N, RESULT
from benchmarks.peers import PAPER_X4, PEERS
from benchmarks.runtimes import RUNTIMES, runnable
from export.common import default_input_size
from export.formats import FORMATS, PRECISIONS, format_of
from export.graph import GraphForm
from export.options import chosen
from models import PRESETS
from models.multadds import HD_720P
from toolkit.errors import PcarnError, check_names
from toolkit.targets import targets


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class CaseServer:
    """A clean Python that has imported the case module once and forks one process per case: each
    case keeps its own process, thread settings and memory peak (the server is started fresh, so a
    big parent's memory is not inherited) without paying torch's import again."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.scratch: tempfile.TemporaryDirectory | None = None

    def _start(self) -> subprocess.Popen:
        if self.process is None or self.process.poll() is not None:
            # The server's temporary files go into a folder the parent removes on close, so a case
            # killed at its timeout (which cannot clean up after itself) leaves nothing behind.
            self.scratch = tempfile.TemporaryDirectory(prefix="pcarn-cases-")
            self.process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.case", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "PYTHONWARNINGS": "ignore", "TMPDIR": self.scratch.name},
                start_new_session=True,  # a timeout kills the server and its case together
            )
        return self.process

    def run(self, spec: dict, timeout: float = 1800) -> dict:
        process = self._start()
        process.stdin.write(json.dumps(spec) + "\n")
        process.stdin.flush()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while selector.select(max(0.0, deadline - time.monotonic())):
                line = process.stdout.readline()
                if not line:
                    break
                if line.startswith(RESULT):
                    return json.loads(line[len(RESULT) :])
        reason = f"timed out after {timeout:g} s" if time.monotonic() >= deadline else "the case server died"
        self.close()
        return {**spec, "status": "failed", "reason": reason}

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
        if self.scratch is not None:
            self.scratch.cleanup()
            self.scratch = None


def _run_case(spec: dict, timeout: float = 1800, server: CaseServer | None = None) -> dict:
    """One case in its own process (through ``server``, or a server of its own)."""
    own = server or CaseServer()
    try:
        return own.run(spec, timeout)
    finally:
        if server is None:
            own.close()


def versions() -> dict:
    """Python's, torch's and each format's runtime's version (None where not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for module in dict.fromkeys(("torch", *(f.runtime_module for f in FORMATS.values()))):
        try:
            out[module] = version(module.replace("_", "-"))
        except PackageNotFoundError:
            out[module] = None
    return out


CEILING_REPEATS = 15


@dataclass(frozen=True)
class Ceiling:
    """The ceiling kernels' sizes and repeats (tests pass small ones)."""

    gemm_n: int = GEMM_N
    conv_size: tuple[int, int] = CONV_SIZE
    repeats: int = CEILING_REPEATS


DEFAULT_CEILING = Ceiling()


def _with_options(case: dict, options: dict) -> dict:
    """The options the case's format takes, as keys of the case (and so of its row), with the exit
    placement its file gets (``export.graph.GraphForm``: folded by default where the format takes it)."""
    fmt = FORMATS.get(case["runtime"])
    if fmt is None:
        return case
    taken = {k: v for k, v in options.items() if k in fmt.options}
    return {**case, **taken, "exit_at_lr": GraphForm.of(options, fmt.options).exit_at_lr}


def _run_cases(cases: list[dict], progress: bool) -> list[dict]:
    """Each case in its own forked process of one case server."""
    server = CaseServer()
    try:
        return [
            server.run(spec) for spec in tqdm(cases, desc="benchmarking", unit="case", disable=not progress)
        ]
    finally:
        server.close()


def _is_model_row(result: dict) -> bool:
    return not result["model"].startswith("ceiling") and result["status"] == "ok"


def _with_efficiency(row: dict, ceiling: dict | None) -> dict:
    """The row with its efficiency against its thread count's ceiling and its ms per output megapixel."""
    row["efficiency"] = row["macs_per_s"] / ceiling["macs_per_s"] if ceiling else None
    h, w = row["input_size"]
    row["ms_per_output_mp"] = 1000 * row["median_s"] / (h * w * row["scale"] ** 2 / 1e6)
    return row


def _machine(thread_counts: list[int], best: dict[int, dict | None]) -> dict:
    most = best[thread_counts[-1]]
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": thread_counts[-1],
        "thread_counts": thread_counts,
        "platform": platform.platform(),
        "ceiling_macs_per_s": most["macs_per_s"] if most else None,
        "ceiling_source": f"{most['model']} on {most['runtime']}" if most else None,
        "ceilings_by_threads": {str(t): (b["macs_per_s"] if b else None) for t, b in best.items()},
        "versions": versions(),
        "cuda": _cuda(),
    }


def run_bench(
    *,
    variants: list[str],
    scales: list[int],
    runtimes: list[str],
    threads: int | list[int],
    repeats: int,
    warmup: int,
    peers: list[str] = ("srresnet",),
    files: list[Path] | None = None,
    input_size: tuple[int, int] | None = None,
    progress: bool = True,
    ceiling: Ceiling = DEFAULT_CEILING,
    precisions: list[str] = ("fp32",),
    tiles: list[int] = (),
    options: dict | None = None,
) -> dict:
    """Time every (model, scale, runtime, precision, thread count) case; PCARN variants in the files
    the exporter writes (int8 ones calibrated on a few photos: latency does not depend on the ranges).
    ``tiles`` adds square LR inputs of those sizes for the PCARN variants (latency per output
    megapixel, for planning tiled inference on a phone). Each thread count has its own ceiling; the
    claims read the 720p rows at the largest thread count. ``options`` (``export.options``, e.g. the
    exit conv folded before the last depth-to-space) shape the PCARN files of the formats that take
    them, and each such row records them; efficiency stays the paper's MultAdds over latency and
    ceiling."""
    thread_counts = [threads] if isinstance(threads, int) else sorted(set(threads))
    if not thread_counts or min(thread_counts) < 1:
        raise PcarnError(f"thread counts must be 1 or more, got {threads}")
    if repeats < 1 or warmup < 0:
        raise PcarnError(f"repeats must be 1 or more and warmup 0 or more, got {repeats} and {warmup}")
    if any(t < 8 for t in tiles):
        raise PcarnError(f"tile sizes are LR pixels, 8 or more, got {list(tiles)}")
    check_names(runtimes, RUNTIMES, "runtime")
    check_names(precisions, PRECISIONS, "precision")
    check_names(peers, PEERS, "peer")
    check_names(variants, PRESETS, "variant")
    # A runtime that cannot run here is reported once, with its own reason, and not tried per case.
    runnable, unavailable = _runnable(runtimes)
    cases = []
    for count in thread_counts:
        base = {"threads": count, "repeats": repeats, "warmup": warmup}
        cases += _cases(
            variants, peers, scales, runnable, precisions, files, input_size, tiles, ceiling, base
        )
    chosen_options = chosen(options or {})
    cases = [_with_options(c, chosen_options) if c["model"] in variants else c for c in cases]
    results = _run_cases(cases, progress)
    ceilings = [r for r in results if r["model"].startswith("ceiling") and r["status"] == "ok"]
    best = {
        count: max(
            (c for c in ceilings if c["threads"] == count), key=lambda c: c["macs_per_s"], default=None
        )
        for count in thread_counts
    }
    rows = [_with_efficiency(r, best.get(r["threads"])) for r in results if _is_model_row(r)]
    report = {
        "machine": _machine(thread_counts, best),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ceilings": ceilings,
        "rows": rows,
        "unavailable": unavailable + [r for r in results if r["status"] != "ok"],
        # cases that broke or timed out; "unavailable" ones (a runtime or a conversion this machine
        # or format lacks) are listed with their reason but are not failures
        "failed": sum(r["status"] == "failed" for r in results),
        "weights_note": "latency does not depend on trained weights; peers use random weights",
    }
    headline = main_rows(report)
    report["claims"] = claims(headline) + int8_claims(headline)
    return report


def main_rows(report: dict) -> list[dict]:
    """The rows the claims and the plot read: 720p-sized inputs at the largest thread count."""
    top = report["machine"]["threads"]
    return [r for r in report["rows"] if r["threads"] == top and not r.get("tile")]


def _runnable(runtimes: list[str]) -> tuple[list[str], list[dict]]:
    """The runtimes that can run here, and one row for each that cannot, with its own reason."""
    unavailable = []
    for rt in runtimes:
        ok, reason = runnable(rt)
        if not ok:
            unavailable.append({"model": "*", "runtime": rt, "status": "unavailable", "reason": reason})
    return [rt for rt in runtimes if rt not in {u["runtime"] for u in unavailable}], unavailable


def _cases(
    variants: list[str],
    peers: list[str],
    scales: list[int],
    runtimes: list[str],
    precisions: list[str],
    files: list[Path] | None,
    input_size: tuple[int, int] | None,
    tiles: list[int],
    ceiling: Ceiling,
    base: dict,
) -> list[dict]:
    """The ceiling kernels and every model case at one thread count (``base``)."""
    # The ceiling is the best rate the machine reaches: short kernels, many repeats, fastest run.
    ceiling_base = {
        **base,
        "repeats": max(base["repeats"], ceiling.repeats),
        "gemm_n": ceiling.gemm_n,
        "conv_size": list(ceiling.conv_size),
    }
    cases = [{"model": "ceiling-gemm", "runtime": "torch", **ceiling_base}]
    cases += [{"model": "ceiling-conv", "runtime": rt, **ceiling_base} for rt in runtimes]
    if files:
        for path in files:
            cases += _file_cases(path, base, input_size, tiles)
        return cases
    for model in [*variants, *peers]:
        for scale in scales:
            sizes = [(list(input_size or default_input_size(scale)), False)]
            if model in variants:  # mobile-sized tiles beside 720p
                sizes += [([t, t], True) for t in tiles]
            for rt in runtimes:
                # lower precisions for the shipped family in the formats that take them
                kept = [p for p in precisions if p == "fp32" or (model in variants and p in _precisions(rt))]
                for precision in kept:
                    for size, tile in sizes:
                        case = {"model": model, "scale": scale, "runtime": rt, "precision": precision}
                        cases.append({**case, "input_size": size, **({"tile": True} if tile else {}), **base})
    return cases


def _precisions(runtime: str) -> tuple[str, ...]:
    if runtime not in FORMATS:
        return ("fp32",)
    return (*FORMATS[runtime].precisions, *FORMATS[runtime].extra_precisions)


def _file_cases(path: Path, base: dict, size: tuple[int, int] | None, tiles: list[int]) -> list[dict]:
    """An exported file's cases: its metadata says the variant, scale and precision, its input the
    size. A ``--dynamic`` file is also timed at each square tile (a bounded one refuses a size above
    its bound: that row says so), and at the 720p LR size when it has no size of its own."""
    fmt = format_of(path)
    meta, _ = fmt.inspect(path)
    shape = fmt.input_size(path)
    case = {
        "model": meta.get("variant", "pcarn-m"),
        "scale": int(meta.get("scale", 4)),
        "runtime": fmt.name,
        "precision": meta.get("precision", "fp32"),
        "file": str(path),
        **base,
    }
    if 0 not in shape and "dynamic" not in meta:
        return [{**case, "input_size": list(shape)}]
    first = size or (shape if 0 not in shape else default_input_size(case["scale"]))
    tiled = [{**case, "input_size": [t, t], "tile": True} for t in tiles]
    return [{**case, "input_size": list(first)}, *tiled]


def _cuda() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except Exception:
        return "none"


def _best(rows: list[dict], model: str, scale: int) -> dict | None:
    mine = [
        r
        for r in rows
        if r["model"] == model and r["scale"] == scale and r.get("precision", "fp32") == "fp32"
    ]
    return min(mine, key=lambda r: r["median_s"]) if mine else None


def _row(rows: list[dict], model: str, scale: int, runtime: str, precision: str) -> dict | None:
    return next(
        (
            r
            for r in rows
            if (r["model"], r["scale"], r["runtime"], r.get("precision", "fp32"))
            == (model, scale, runtime, precision)
        ),
        None,
    )


def int8_claims(rows: list[dict], scale: int = 4) -> list[dict]:
    """int8 against fp32 of the same model on the same runtime, in the same run."""
    out = []
    for model, runtime in sorted({(r["model"], r["runtime"]) for r in rows}):
        fp32, int8 = _row(rows, model, scale, runtime, "fp32"), _row(rows, model, scale, runtime, "int8")
        if not (fp32 and int8):
            continue
        speedup = fp32["median_s"] / int8["median_s"]
        target = targets("bench")["int8_speedup"].get(runtime, 1.0)  # elsewhere: faster at all
        out.append(
            {
                "claim": f"{model} int8 faster than fp32 on {runtime} (x{scale})",
                "paper": "-",
                "ours": f"{speedup:.2f}x",
                "holds": speedup > 1.0,
                "target": f">= {target:g}x" if target > 1 else "> 1x",
                "target_met": speedup >= target if target > 1 else speedup > 1.0,
            }
        )
    return out


def claims(rows: list[dict], scale: int = 4) -> list[dict]:
    """The paper's efficiency claims (section 5.3, Fig. 13, Table 4) against this run's numbers."""
    out = []
    pc, pm = _best(rows, "pcarn", scale), _best(rows, "pcarn-m", scale)
    if pc and pm:
        ratio = pc["multadds"] / pm["multadds"]
        for rt in sorted({r["runtime"] for r in rows}):
            a = _row(rows, "pcarn", scale, rt, "fp32")
            b = _row(rows, "pcarn-m", scale, rt, "fp32")
            if a and b:
                speedup = a["median_s"] / b["median_s"]
                out.append(
                    {
                        "claim": f"PCARN-M faster than PCARN on {rt} (x{scale})",
                        "paper": f"MultAdds ratio {ratio:.2f}x",
                        "ours": f"{speedup:.2f}x",
                        "holds": speedup > 1.0,
                        "target": f">= {targets('bench')['multadds_ratio']}x",
                        "target_met": speedup >= targets("bench")["multadds_ratio"],
                    }
                )
        for model, row in (("pcarn", pc), ("pcarn-m", pm)):
            eff = row.get("efficiency")
            if eff is not None:
                out.append(
                    {
                        "claim": f"{model} efficiency on its best runtime ({row['runtime']}, x{scale})",
                        "paper": "-",
                        "ours": f"{100 * eff:.0f}% of ceiling",
                        "holds": None,
                        "target": f">= {100 * targets('bench')['efficiency'][model]:.0f}%",
                        "target_met": eff >= targets("bench")["efficiency"][model],
                    }
                )
    sr = _best(rows, "srresnet", scale)
    if pc and sr:
        out.append(
            {
                "claim": f"PCARN faster than SRResNet on CPU (x{scale}, best runtime each)",
                "paper": "yes (Fig. 13)",
                "ours": f"{pc['median_s']:.2f}s vs {sr['median_s']:.2f}s",
                "holds": pc["median_s"] < sr["median_s"],
            }
        )
    everyone = [m for m in {r["model"] for r in rows}]
    bests = {m: _best(rows, m, scale) for m in everyone}
    bests = {m: b for m, b in bests.items() if b}
    if pm and len(bests) > 1:
        fastest = min(bests, key=lambda m: bests[m]["median_s"])
        out.append(
            {
                "claim": f"PCARN-M the fastest of all on CPU (x{scale})",
                "paper": "yes (Fig. 13)",
                "ours": f"fastest: {fastest}",
                "holds": fastest == "pcarn-m",
            }
        )
    for model in ("pcarn", "pcarn-m", "srresnet"):
        b = bests.get(model)
        if b:
            out.append(
                {
                    "claim": f"{model} MultAdds at x4 720p",
                    "paper": f"{PAPER_X4[model]['multadds'] / 1e9:.1f}G",
                    "ours": f"{b['multadds'] / 1e9 * _hd_correction(b):.1f}G",
                    "holds": abs(b["multadds"] * _hd_correction(b) - PAPER_X4[model]["multadds"]) < 0.1e9,
                }
            )
    out.append(
        {
            "claim": "GPU: cascades and group convs erase the CPU advantage",
            "paper": "Fig. 13 bottom",
            "ours": "not measured: no CUDA device" if _cuda() == "none" else "see GPU rows",
            "holds": None,
        }
    )
    return out


def _hd_correction(row: dict) -> float:
    """Rows are timed at the LR size of a 720p output; MultAdds as the paper counts them use 1280*720/s^2."""
    h, w = row["input_size"]
    s = row["scale"]
    return (HD_720P[0] * HD_720P[1] / (s * s)) / (h * w)


__all__ = ["run_bench", "claims", "PEERS"]
