"""The run folder's JSONL log and its loss / PSNR plot."""

from __future__ import annotations

import json
import os
from pathlib import Path

from toolkit.atomic import atomic_path


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


def _ema(values: list[float], weight: float = 0.9) -> list[float]:
    smooth, acc = [], values[0]
    for value in values:
        acc = weight * acc + (1 - weight) * value
        smooth.append(acc)
    return smooth


def plot_curves(records: list[dict], path: Path) -> Path | None:
    """Training losses (smoothed) and validation per scale as a PNG.

    Stage 1: the L1 loss and the PSNR-Y gain over bicubic. GAN stage: the generator's adversarial and
    perceptual terms, the discriminator's real and fake terms, PSNR-Y and LPIPS.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    gan = bool(train) and "adversarial" in train[-1]
    panels = 3 if gan else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    ax_loss, ax_psnr = axes[0], axes[1]
    if train:
        steps = [r["step"] for r in train]
        keys = (
            [
                ("adversarial", "G adversarial"),
                ("vgg", "G perceptual"),
                ("loss_d_real", "D real"),
                ("loss_d_fake", "D fake"),
            ]
            if gan
            else [("loss", "training loss")]
        )
        for key, label in keys:
            points = [(s, r[key]) for s, r in zip(steps, train, strict=True) if key in r]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            line = ax_loss.plot(xs, _ema(list(ys)), label=f"{label} (EMA 0.9)")[0]
            ax_loss.plot(xs, ys, alpha=0.2, color=line.get_color())
        ax_loss.set_yscale("log")
        ax_loss.set_xlabel("step")
        ax_loss.legend(fontsize=8)
    if val:
        heads = sorted(val[-1]["metrics"])
        for head in heads:
            ax_psnr.plot(
                [r["step"] for r in val], [r["metrics"][head]["gain_db"] for r in val], marker="o", label=head
            )
        ax_psnr.axhline(0.0, color="grey", lw=0.8)
        ax_psnr.set_xlabel("step")
        ax_psnr.set_ylabel("PSNR-Y gain over bicubic (dB)")
        ax_psnr.legend()
        if gan:
            ax_lpips = axes[2]
            for head in heads:
                points = [
                    (r["step"], r["metrics"][head]["lpips"]) for r in val if "lpips" in r["metrics"][head]
                ]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax_lpips.plot(xs, ys, marker="o", label=head)
            ax_lpips.set_xlabel("step")
            ax_lpips.set_ylabel("LPIPS (AlexNet v0.1, lower is better)")
            ax_lpips.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
