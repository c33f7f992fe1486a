"""Per-op time of exported graphs: where a model's latency goes, and at what multiply-add rate.

ONNX Runtime has a profiler: each node's kernel time is read from its trace, in the real graph.
LiteRT's Python interpreter has none, so each operator of the ``.tflite`` file is cut out into a
one-op model (same operator, options, weights and shapes) and timed alone under XNNPACK; the sum
of those times is printed next to the whole graph's time, so what an isolated op misses (cache
effects, scheduling) is visible. Ops with identical signatures are timed once.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from export.formats import FORMATS, format_of
from toolkit.errors import PcarnError, check_names

PROFILED = [name for name, fmt in FORMATS.items() if fmt.profile is not None]


def profile(path: Path, threads: int, repeats: int = 5, warmup: int = 2) -> dict:
    fmt = format_of(path)
    if fmt.profile is None:
        raise PcarnError(f"per-op profiles cover {', '.join(PROFILED)} files, not {fmt.name} ({path})")
    fmt.inspect(path)  # a corrupt or foreign file is refused by name before any timing
    return fmt.profile(path, threads, repeats, warmup)


def _label(result: dict) -> str:
    if "model" in result:
        h, w = result["input_size"]
        return f"{result['model']} x{result['scale']} at {h}x{w} -> 720p"
    return result["file"]


def format_profile(result: dict) -> str:
    lines = [
        f"{_label(result)} ({result['runtime']}, {result['threads']} threads, {result['method']}): "
        f"whole graph {1000 * result['whole_graph_s']:.1f} ms, "
        f"sum of ops {1000 * result['sum_of_ops_s']:.1f} ms",
        f"{'op':<38} {'count':>5} {'ms':>9} {'share':>6} {'GMAC':>7} {'GMAC/s':>7}",
    ]
    for r in result["rows"]:
        rate = f"{r['macs_per_s'] / 1e9:7.1f}" if r["macs_per_s"] else f"{'-':>7}"
        gmac = f"{r['macs'] / 1e9:7.2f}" if r["macs"] else f"{'-':>7}"
        ms, share = 1000 * r["seconds"], 100 * r["share"]
        lines.append(f"{r['op'][:38]:<38} {r['count']:>5} {ms:9.1f} {share:5.1f}% {gmac} {rate}")
    return "\n".join(lines)


def profile_variants(
    variants: list[str], scale: int, runtimes: list[str], threads: int, repeats: int, warmup: int
) -> list[dict]:
    """Profile each variant's head at the 720p-output size in the file ``pcarn export`` writes (random
    weights: time does not depend on them)."""
    import torch

    from benchmarks.prepare import model_file
    from export.common import default_input_size
    from models import PCARN, PRESETS

    check_names(variants, PRESETS, "variant")
    check_names(runtimes, PROFILED, "runtime for per-op profiles")
    torch.set_num_threads(threads)
    size = default_input_size(scale)
    results = []
    for variant in variants:
        model = PCARN(PRESETS[variant]).eval()
        for runtime in runtimes:
            with tempfile.TemporaryDirectory(prefix="pcarn-prof-") as workdir:
                path = model_file(model, FORMATS[runtime], scale, size, Path(workdir))
                result = profile(path, threads, repeats, warmup)
            # a temporary file: name it, not the machine's folder
            result["file"] = path.name
            results.append({**result, "model": variant, "scale": scale, "input_size": list(size)})
    return results
