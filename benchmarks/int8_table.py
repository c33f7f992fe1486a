"""The int8 table of issue 19: every head of every model, in every int8 format, at both input sizes,
against the budget, from the committed export results.

Each results file holds ``runs`` of ``pcarn export`` (the command, then one row per file: cost in dB
PSNR-Y on held-out photos, LPIPS of fp32 and of the file). Rows are read in the order given, file by
file and run by run, so a later run of the same model, format, input size and head replaces an
earlier one (a re-made file supersedes its old measurement). A cell that no run measured says so.

    python -m benchmarks.int8_table benchmarks/results/int8-weights-first.json \\
        benchmarks/results/int8-pt2e-refixed.json --out benchmarks/results/int8-table.md
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from toolkit.weights.registry import MODELS

FORMATS = ("onnx", "tflite", "executorch")
FORMAT_LABELS = {"onnx": "ONNX", "tflite": "TFLite", "executorch": "ExecuTorch"}
MODEL_ORDER = ("pcarn-m", "pcarn", "pcarn-m-gan", "pcarn-gan", "authors-pcarn-m-l1", "authors-pcarn-m-gan")
SCALES = (2, 3, 4)
DEFAULT_SIZE = "720p"
SIZES = (DEFAULT_SIZE, "96x128")  # the two input sizes
LPIPS_RISE_BUDGET = 0.005  # GAN models: LPIPS against HR may rise this much (issue 19)


@dataclass(frozen=True)
class Cell:
    cost_db: float
    budget_db: float
    lpips_rise: float | None  # GAN models only
    source: str  # the results file

    @property
    def within(self) -> bool:
        lpips_ok = self.lpips_rise is None or self.lpips_rise <= LPIPS_RISE_BUDGET
        return self.cost_db <= self.budget_db and lpips_ok


def input_size(command: str) -> str:
    """The input size an export command asked for (``--input-size HxW``), else the default 720p."""
    found = re.search(r"--input-size[ =](\d+x\d+)", command)
    return found.group(1) if found else DEFAULT_SIZE


def is_gan(model: str) -> bool:
    return MODELS[model].stage == "gan" if model in MODELS else "gan" in model


def read_cells(paths: list[Path]) -> tuple[dict[tuple, Cell], list[tuple[str, str]]]:
    """(model, format, size, scale) -> the latest measured cell; and each run's (file, command)."""
    cells: dict[tuple, Cell] = {}
    commands = []
    for path in paths:
        for run in json.loads(path.read_text())["runs"]:
            size = input_size(run["command"])
            commands.append((path.name, run["command"]))
            for row in run["files"]:
                rise = None
                if is_gan(row["model"]):
                    rise = float(row["lpips_file"]) - float(row["lpips_fp32"])
                cell = Cell(float(row["cost_db"]), float(row["budget_db"]), rise, path.name)
                cells[(row["model"], row["format"], size, int(row["scale"]))] = cell
    return cells, commands


def _cell_text(cells: dict[tuple, Cell], model: str, fmt: str, size: str) -> str:
    parts = []
    for scale in SCALES:
        cell = cells.get((model, fmt, size, scale))
        if cell is None:
            parts.append("–")
            continue
        text = f"{cell.cost_db:+.3f}"
        parts.append(text if cell.within else f"**{text}** ✗")
    if all(p == "–" for p in parts):
        return "not measured"
    return " / ".join(parts)


def render(cells: dict[tuple, Cell], commands: list[tuple[str, str]]) -> str:
    models = [*MODEL_ORDER, *sorted({k[0] for k in cells} - set(MODEL_ORDER))]
    sizes = [*SIZES, *sorted({k[2] for k in cells} - set(SIZES))]
    lines = [
        "# int8 cost on held-out photos, every head (x2 / x3 / x4, dB PSNR-Y)",
        "",
        "fp32 PyTorch minus the int8 file, on photos never used for calibration or the mixed-precision "
        f"choice. **Bold ✗**: over the budget (0.05 dB; GAN models also LPIPS +{LPIPS_RISE_BUDGET}). "
        "–: head not measured.",
        "",
        "| model | input | " + " | ".join(FORMAT_LABELS[f] for f in FORMATS) + " |",
        "|---|---|" + "---|" * len(FORMATS),
    ]
    for model in models:
        for size in sizes:
            row = [_cell_text(cells, model, fmt, size) for fmt in FORMATS]
            lines.append(f"| {model} | {size} | " + " | ".join(row) + " |")
    expected = len(models) * len(sizes) * len(FORMATS) * len(SCALES)
    measured = list(cells.values())
    missing = [k for k in cells.items() if not k[1].within]
    lines += [
        "",
        f"{len(measured)} of {expected} heads measured; {len(measured) - len(missing)} within the budget.",
    ]
    if missing:
        lines.append("Over the budget: " + "; ".join(_miss(key, cell) for key, cell in missing) + ".")
    worst = max((c.lpips_rise for c in measured if c.lpips_rise is not None), default=None)
    if worst is not None:
        lines.append(f"Largest LPIPS rise of a GAN model's file: {worst:+.4f}.")
    lines += ["", "## Sources (later runs replace earlier ones)", ""]
    lines += [f"- `{name}`: `{command}`" for name, command in commands]
    return "\n".join(lines) + "\n"


def _miss(key: tuple, cell: Cell) -> str:
    model, fmt, size, scale = key
    lpips = f", LPIPS {cell.lpips_rise:+.4f}" if cell.lpips_rise is not None else ""
    return f"{model} {FORMAT_LABELS.get(fmt, fmt)} x{scale} {size} {cell.cost_db:+.3f} dB{lpips}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="results JSON files, oldest first")
    parser.add_argument("--out", type=Path, help="write the Markdown table here (default: print it)")
    args = parser.parse_args(argv)
    absent = [str(p) for p in args.results if not p.is_file()]
    if absent:
        parser.error(f"no such results file: {absent[0]}")
    try:
        cells, commands = read_cells(args.results)
    except (ValueError, KeyError, TypeError) as exc:
        parser.error(f"not a results file of pcarn export runs ({type(exc).__name__}: {exc})")
    text = render(cells, commands)
    text += f"\nMade by `python -m benchmarks.int8_table {shlex.join(str(p) for p in args.results)}`.\n"
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
