"""Before/after of the TFLite lowering the exporter owns, timed in one run on one machine.

``before``: litert-torch's own lowering of the same deploy head (NHWC wrapper, PyTorch pixel shuffle).
``after``: the exporter's graph (``export/tflite_d2s.py``): one native DEPTH_TO_SPACE per stage, output
channels permuted for dense heads, a rank-4 channel transpose for grouped ones. The two files are
timed alternately, so drift on a shared machine hits both alike.

    python -m benchmarks.lowering --variants pcarn,pcarn-m --scale 4 --threads 2 --repeats 7 \\
        --out benchmarks/results/lowering-x4.json
"""

from __future__ import annotations

import collections
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.case import timed_alternately
from benchmarks.report import before_after_parser, save_rows
from export import tflite_format
from export.common import NHWC, DeployHead, default_input_size, native_output_captured
from export.interface import ExportJob
from export.tflite_file import TFLiteFile
from export.tflite_format import interpreter
from models import PCARN, PRESETS


def export_before(head: DeployHead, path: Path, size: tuple[int, int]) -> Path:
    import litert_torch

    with native_output_captured():
        litert_torch.convert(NHWC(head).eval(), (torch.rand(1, *size, 3),)).export(str(path))
    return path


def compare(variant: str, scale: int, threads: int, repeats: int, warmup: int) -> dict:
    head = DeployHead(PCARN(PRESETS[variant]).eval(), scale).eval()
    size = default_input_size(scale)
    folder = Path(tempfile.mkdtemp(prefix="pcarn-lowering-"))
    files = {
        "before": export_before(head, folder / "before.tflite", size),
        "after": tflite_format.export(ExportJob(head, folder / "after.tflite", size, "fp32", {})),
    }
    runners = {name: interpreter(path.read_bytes(), threads).invoke for name, path in files.items()}
    times = timed_alternately(runners, warmup, repeats)
    out = {"model": variant, "scale": scale, "input_size": list(size), "threads": threads}
    for name, path in files.items():
        ops = collections.Counter(op for op, _ in TFLiteFile.read(path).ops())
        out[name] = {
            "median_s": statistics.median(times[name]),
            "min_s": min(times[name]),
            "ops": dict(sorted(ops.items())),
        }
    out["speedup"] = out["before"]["median_s"] / out["after"]["median_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    args = before_after_parser(__doc__.splitlines()[0]).parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [compare(v, args.scale, args.threads, args.repeats, args.warmup) for v in args.variants.split(",")]
    for r in rows:
        print(
            f"{r['model']} x{r['scale']}: before {r['before']['median_s']:.3f} s, after "
            f"{r['after']['median_s']:.3f} s ({r['speedup']:.2f}x)\n  before ops {r['before']['ops']}\n"
            f"  after ops  {r['after']['ops']}"
        )
    if args.out:
        save_rows(args.out, "benchmarks.lowering", argv, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
