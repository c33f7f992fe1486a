"""One timed case in its own process, so its peak memory and thread settings are its own.

``python -m benchmarks.case '{"model": "pcarn-m", "scale": 4, "runtime": "onnx", ...}'`` prints one JSON
result line. ``model`` is a preset name, a peer name, ``ceiling-gemm`` / ``ceiling-conv``, or a file.
``python -m benchmarks.case --serve`` reads one spec per line and forks a fresh process for each
(``benchmarks/bench.py``'s case server), so torch is imported once per run, not once per case.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.peers import PEERS
from benchmarks.prepare import Unavailable, prepare
from export.options import OPTIONS
from export.profiling import timed
from models import PRESETS, build_model
from models.multadds import multadds_for_lr_size

CONV_SIZE = (180, 320)  # the ceiling conv: 64 -> 64 channels, 3x3, at 320x180
GEMM_N = 2048


class ConvOnly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(64, 64, 3, padding=1)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        return self.conv(x)


def timed_alternately(runs: dict[str, object], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of each named zero-argument call, the calls interleaved run by run, so drift on a
    shared machine hits every one alike (the before/after benchmarks)."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def _stats(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "median_s": statistics.median(ordered),
        "min_s": ordered[0],
        "p90_s": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
        "repeats": len(ordered),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux carries ``ru_maxrss`` over fork and exec, so a
    case launched by a big parent (``pcarn deploy``) would report the parent's peak; VmHWM is reset
    on exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux, bytes on macOS


def run_case(spec: dict) -> dict:
    """One case's row; the files it times live in a temporary folder removed when it ends."""
    with tempfile.TemporaryDirectory(prefix="pcarn-bench-") as workdir:
        return _run_case(spec, Path(workdir))


def _run_case(spec: dict, workdir: Path) -> dict:
    threads, warmup, repeats = spec["threads"], spec["warmup"], spec["repeats"]
    torch.set_num_threads(threads)
    name, runtime = spec["model"], spec["runtime"]
    result = {**spec}
    try:
        if name == "ceiling-gemm":
            if runtime != "torch":
                raise Unavailable("the GEMM ceiling is measured with torch.matmul")
            n = spec.get("gemm_n", GEMM_N)
            a, b = torch.rand(n, n), torch.rand(n, n)
            run, macs = (lambda: torch.matmul(a, b)), n**3
        elif name == "ceiling-conv":
            conv = ConvOnly().eval()
            size = tuple(spec.get("conv_size", CONV_SIZE))
            macs = 64 * 64 * 9 * size[0] * size[1]
            if runtime in ("torch", "torch-cl"):
                fmt = torch.channels_last if runtime == "torch-cl" else torch.contiguous_format
                conv = conv.to(memory_format=fmt)
                x = torch.rand(1, 64, *size).contiguous(memory_format=fmt)

                def run():
                    with torch.inference_mode():
                        conv(x)
            else:
                run = prepare(runtime, conv, 1, size, threads, workdir=workdir, in_channels=64)
        else:
            scale = spec["scale"]
            size = tuple(spec["input_size"])
            if name in PRESETS:
                model = build_model(name).eval()
            elif name in PEERS:
                torch.manual_seed(0)
                model = PEERS[name](scale).eval()
            else:
                raise Unavailable(f"unknown model {name!r}")
            target = Path(spec["file"]) if spec.get("file") else model
            options = {k: spec[k] for k in OPTIONS if k in spec} or None
            run = prepare(
                runtime,
                target,
                scale,
                size,
                threads,
                workdir=workdir,
                precision=spec.get("precision", "fp32"),
                options=options,
            )
            macs = multadds_for_lr_size(model, scale, size)
            result["params"] = sum(p.numel() for p in model.parameters())
        times = timed(run, warmup, repeats)
    except Unavailable as exc:
        return {**result, "status": "unavailable", "reason": str(exc)}
    result.update(_stats(times))
    result["multadds"] = int(macs)
    # A ceiling is the highest rate reached (fastest run); a model's rate is its typical (median) one.
    result["macs_per_s"] = macs / (result["min_s"] if name.startswith("ceiling") else result["median_s"])
    result["images_per_s"] = 1.0 / result["median_s"]
    result["peak_rss_mb"] = peak_rss_mb()
    result["status"] = "ok"
    return result


RESULT = "pcarn-case-result "


def _forked_case(spec: dict, answer: int) -> None:
    """In the forked child: run the case, send its row on ``answer``; native chatter goes to stderr."""
    os.dup2(2, 1)  # stdout is the server's answer channel
    try:
        result = run_case(spec)
    except Exception as exc:  # a case that breaks is a failed row, not a dead server
        result = {**spec, "status": "failed", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    os.write(answer, json.dumps(result).encode())


def serve() -> None:
    """One forked process per spec line; the answer line is the case's row or its failure. The
    server itself never runs a kernel, so no thread pool exists before a fork."""
    for line in sys.stdin:
        spec = json.loads(line)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            code = 0
            try:
                _forked_case(spec, write)
            except BaseException:
                code = 1
            os._exit(code)
        os.close(write)
        chunks = []
        while chunk := os.read(read, 1 << 16):
            chunks.append(chunk)
        os.close(read)
        _, status = os.waitpid(pid, 0)
        if chunks:
            result = json.loads(b"".join(chunks))
        else:
            reason = f"the case process died ({_exit_reason(status)})"
            result = {**spec, "status": "failed", "reason": reason}
        sys.stdout.write(RESULT + json.dumps(result) + "\n")
        sys.stdout.flush()


def _exit_reason(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        print(json.dumps(run_case(json.loads(sys.argv[1]))))
