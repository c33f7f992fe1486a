"""What the app-facing graph forms cost, each against the form it replaced, timed alternately in one
process (drift on a shared machine hits both alike), x4 at the LR size of a 720p output:

- ONNX: the DCR DepthToSpace (``export/onnx/dcr.py``) against PyTorch's CRD one, PCARN and PCARN-M;
- ExecuTorch, PCARN-M: the rank-4 pixel shuffle (``export/shuffle_forms.py``) against the rank-6
  lowering, and the bounded ``--dynamic`` file against the fixed one.

    python -m benchmarks.app_forms --threads 2 --repeats 7 --out benchmarks/results/app-forms-x4.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

import export.onnx.exporter as onnx_exporter
from benchmarks.case import _stats, timed_alternately
from export.common import DeployHead, default_input_size
from export.executorch.exporter import lowered
from export.formats import get_format
from export.pipeline import export_file
from models import build_model

SCALE = 4


def onnx_sessions(variant: str, size: tuple[int, int], threads: int, workdir: Path) -> dict:
    fmt = get_format("onnx")
    head = DeployHead(build_model(variant), SCALE).eval()
    paths = {"dcr": workdir / f"{variant}-dcr.onnx", "crd": workdir / f"{variant}-crd.onnx"}
    paths["dcr"].write_bytes(onnx_exporter.simplified_fp32(head, size, False))
    with mock.patch.object(onnx_exporter, "to_dcr", lambda model: model):  # the graph torch writes
        paths["crd"].write_bytes(onnx_exporter.simplified_fp32(head, size, False))
    x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
    return {f"onnx {variant} {k}": fmt.session(p, threads, x) for k, p in paths.items()}


def pte_sessions(size: tuple[int, int], threads: int, workdir: Path) -> dict:
    fmt = get_format("executorch")
    model = build_model("pcarn-m")
    files = {
        "rank-4 shuffle (shipped)": export_file(
            model, fmt, SCALE, "fp32", workdir / "fixed", input_size=size
        ),
        "rank-4 shuffle, --dynamic": export_file(
            model, fmt, SCALE, "fp32", workdir / "dynamic", input_size=size, options={"dynamic": True}
        ),
    }
    rank6 = workdir / "rank6.pte"  # PyTorch's pixel shuffle as ExecuTorch lowers it
    head = DeployHead(model, SCALE).eval()
    rank6.write_bytes(lowered(torch.export.export(head, (torch.rand(1, 3, *size),)), {}))
    files["rank-6 shuffle"] = rank6
    x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
    return {f"pte pcarn-m {k}": fmt.session(p, threads, x) for k, p in files.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    size = default_input_size(SCALE)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="pcarn-app-forms-") as tmp:
        work = Path(tmp)
        runs = {
            **onnx_sessions("pcarn", size, args.threads, work),
            **onnx_sessions("pcarn-m", size, args.threads, work),
        }
        runs.update(pte_sessions(size, args.threads, work))
        times = timed_alternately(runs, warmup=1, repeats=args.repeats)
    document = {
        "command": "python -m benchmarks.app_forms "
        f"--threads {args.threads} --repeats {args.repeats} --out {args.out}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scale": SCALE,
        "input_size": list(size),
        "threads": args.threads,
        "results": {name: _stats(t) for name, t in times.items()},
    }
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    for name, t in times.items():
        print(f"{name:40} median {1000 * _stats(t)['median_s']:7.1f} ms")


if __name__ == "__main__":
    main()
