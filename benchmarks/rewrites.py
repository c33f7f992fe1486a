"""Before/after of a graph change, in the runtimes it is for, in one run: the one tool for them all.

Each side is a file the exporter writes (``export.pipeline.export_file`` with a set of export
options), or the format's plain conversion (its converter's own lowering, no exporter rewrites). Both
files of a runtime run on the same input through the format's own runner, their outputs are
compared, their op histograms read back by the format's checker, and they are timed alternately so
drift on a shared machine hits both alike.

- ``exit-at-lr``: the paper's deploy head (``--paper-exit``) -> the exit conv folded before the last
  depth-to-space (``--exit-at-lr``, the exporter's default where a format takes it).
- ``conv-transpose``: the folded head with depth-to-space -> each pixel shuffle as a one-hot grouped
  ConvTranspose (``--shuffle conv-transpose``).
- ``lowering``: the converter's plain lowering of the head -> the exporter's file of the same graph
  (``--paper-exit``; for TFLite: one native DEPTH_TO_SPACE per stage, ``export/tflite/d2s.py``).

    python -m benchmarks.rewrites --rewrite exit-at-lr --variants pcarn,pcarn-m --scale 4 --threads 2 \\
        --repeats 7 --out benchmarks/results/exit-rewrite-x4.json
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.case import timed_alternately
from benchmarks.report import before_after_parser, save_rows
from export.checks import expectation
from export.common import DeployHead, default_input_size, native_output_captured
from export.exit_at_lr import ExitAtLR, extra_multadds
from export.formats import FORMATS, get_format
from export.interface import ExportFormat
from export.options import refuse_unaccepted
from export.pipeline import export_file
from export.shuffle_forms import ConvTransposeShuffleHead
from models import PCARN, PRESETS, build_model
from models.multadds import multadds_for_lr_size
from toolkit.errors import PcarnError


@dataclass(frozen=True)
class Side:
    """One side of a comparison: the exporter's file with these options, or the plain conversion."""

    options: dict = field(default_factory=dict)
    plain: bool = False


PAPER_EXIT = {"exit_at_lr": False}  # each side names its exit placement: the default is per format
REWRITES: dict[str, tuple[Side, Side]] = {
    "exit-at-lr": (Side(PAPER_EXIT), Side({"exit_at_lr": True})),
    "conv-transpose": (Side({"exit_at_lr": True}), Side({"exit_at_lr": True, "shuffle": "conv-transpose"})),
    "lowering": (Side(plain=True), Side(PAPER_EXIT)),
}
DEFAULT_RUNTIMES = {"exit-at-lr": "onnx,tflite", "conv-transpose": "onnx", "lowering": "tflite"}


def refuse_unsupported(rewrite: str, runtimes: list[str]) -> None:
    """One error before any work for a runtime that cannot take a side of ``rewrite``."""
    for name in runtimes:
        fmt = get_format(name)
        for side in REWRITES[rewrite]:
            if side.plain and fmt.plain is None:
                raise PcarnError(f"{name} has no plain conversion for the {rewrite} comparison")
            refuse_unaccepted([fmt], side.options)


def _write(
    side: Side, model: PCARN, head: DeployHead, fmt: ExportFormat, size: tuple[int, int], folder: Path
) -> Path:
    """``head`` (of ``model``) as ``side`` writes it into ``folder``."""
    if side.plain:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"plain{fmt.suffix}"
        with native_output_captured():
            fmt.plain(head, path, (1, 3, *size))
        return path
    provenance = {"variant": "head"}
    return export_file(
        model,
        fmt,
        head.scale,
        "fp32",
        folder,
        input_size=size,
        provenance=provenance,
        options=side.options,
    )


def _extra_multadds(options: dict, head: DeployHead, size: tuple[int, int]) -> int:
    """Multiply-adds a side's options add to the graph (the paper's count stays the model's)."""
    factors = head.net.heads[f"x{head.scale}"].factors
    extra = extra_multadds(head, size) if options.get("exit_at_lr") else 0
    if options.get("shuffle") == "conv-transpose":
        # a one-hot ConvTranspose multiplies each output by r^2 taps of its group (one non-zero)
        folded = ConvTransposeShuffleHead(head, exit_at_lr=bool(options.get("exit_at_lr")))
        h, w = size
        for shuffle, r in zip(folded.shuffles, factors, strict=True):
            h, w = h * r, w * r
            extra += shuffle.channels * h * w * r * r
    return extra


def compare(
    variant: str, scale: int, runtime: str, threads: int, repeats: int, warmup: int, rewrite: str
) -> dict:
    torch.manual_seed(0)
    model = build_model(variant).eval()
    head = DeployHead(model, scale).eval()
    size = default_input_size(scale)
    fmt = get_format(runtime)
    sides = dict(zip(("before", "after"), REWRITES[rewrite], strict=True))
    with tempfile.TemporaryDirectory(prefix="pcarn-rewrite-") as tmp:
        files = {name: _write(side, model, head, fmt, size, Path(tmp) / name) for name, side in sides.items()}
        runners = {name: fmt.runner(path, threads) for name, path in files.items()}
        x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
        outputs = {name: run(x) for name, run in runners.items()}
        times = timed_alternately({k: (lambda r=run: r(x)) for k, run in runners.items()}, warmup, repeats)
        ops = {}
        for name, path in files.items():
            graph_head = ExitAtLR(head) if sides[name].options.get("exit_at_lr") else head
            with native_output_captured():
                ops[name] = dict(sorted(fmt.check(path, expectation(graph_head), "fp32").ops.items()))
    before_s, after_s = (statistics.median(times[k]) for k in ("before", "after"))
    paper = multadds_for_lr_size(model, scale, size)
    return {
        "rewrite": rewrite,
        "variant": variant,
        "scale": scale,
        "runtime": runtime,
        "input_size": list(size),
        "threads": threads,
        "before_median_s": before_s,
        "after_median_s": after_s,
        "speedup": before_s / after_s,
        "max_abs_difference": float(np.abs(outputs["before"] - outputs["after"]).max()),
        "multadds_paper": paper,
        "multadds_before": paper + _extra_multadds(sides["before"].options, head, size),
        "multadds_after": paper + _extra_multadds(sides["after"].options, head, size),
        "before_ops": ops["before"],
        "after_ops": ops["after"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = before_after_parser(__doc__.splitlines()[0])
    parser.add_argument("--rewrite", choices=tuple(REWRITES), default="exit-at-lr")
    defaults = "; ".join(f"{k}: {v}" for k, v in DEFAULT_RUNTIMES.items())
    parser.add_argument("--runtimes", help=f"comma list from {','.join(FORMATS)}; default: {defaults}")
    args = parser.parse_args(argv)
    runtimes = (args.runtimes or DEFAULT_RUNTIMES[args.rewrite]).split(",")
    for variant in args.variants.split(","):
        if variant not in PRESETS:
            parser.error(f"unknown variant {variant!r}; choose from {', '.join(PRESETS)}")
    try:
        refuse_unsupported(args.rewrite, runtimes)
    except PcarnError as exc:
        parser.error(str(exc))
    torch.set_num_threads(args.threads)
    rows = []
    for variant in args.variants.split(","):
        for runtime in runtimes:
            row = compare(variant, args.scale, runtime, args.threads, args.repeats, args.warmup, args.rewrite)
            rows.append(row)
            print(
                f"{args.rewrite} {variant} x{args.scale} {runtime}: {row['before_median_s']:.3f} s -> "
                f"{row['after_median_s']:.3f} s ({row['speedup']:.2f}x), max abs difference "
                f"{row['max_abs_difference']:.1e}, MultAdds {row['multadds_before'] / 1e9:.1f} G -> "
                f"{row['multadds_after'] / 1e9:.1f} G (paper {row['multadds_paper'] / 1e9:.1f} G)"
            )
    if args.out:
        save_rows(args.out, "benchmarks.rewrites", argv, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
