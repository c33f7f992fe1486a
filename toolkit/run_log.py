"""The run folder's JSONL log and its loss / PSNR plot."""

from __future__ import annotations

import json
import os
from pathlib import Path


class RunLog:
    """Append-only JSONL, flushed per line so a killed run keeps everything it logged."""

    def __init__(self, path: Path, truncate_after_step: int | None = None) -> None:
        self.path = path
        if truncate_after_step is not None and path.is_file():
            # A resumed run replays steps after its last save; drop their stale lines.
            kept = [line for line in path.read_text().splitlines() if _step(line) <= truncate_after_step]
            path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def _step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError):
        return 1 << 62  # a torn last line from a kill: drop it


def plot_curves(records: list[dict], path: Path) -> Path | None:
    """Training loss (smoothed) and validation PSNR-Y gain over bicubic per scale, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    fig, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [r["step"] for r in train]
        loss = [r["loss"] for r in train]
        smooth, acc = [], loss[0]
        for value in loss:
            acc = 0.9 * acc + 0.1 * value
            smooth.append(acc)
        ax_loss.plot(steps, loss, alpha=0.25, color="tab:blue")
        ax_loss.plot(steps, smooth, color="tab:blue", label="training loss (EMA 0.9)")
        ax_loss.set_yscale("log")
        ax_loss.set_xlabel("step")
        ax_loss.legend()
    if val:
        for head in sorted(val[-1]["metrics"]):
            ax_psnr.plot(
                [r["step"] for r in val], [r["metrics"][head]["gain_db"] for r in val], marker="o", label=head
            )
        ax_psnr.axhline(0.0, color="grey", lw=0.8)
        ax_psnr.set_xlabel("step")
        ax_psnr.set_ylabel("PSNR-Y gain over bicubic (dB)")
        ax_psnr.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path
