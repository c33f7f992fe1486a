"""Quantization-aware fine-tuning of one head: weights that keep their quality when a runtime
rounds them and their activations to 8 bits.

Plain int8 (every weight and activation 8-bit, the runtimes' fast path) costs a trained PCARN-M
+0.10 to +0.27 dB PSNR-Y on photos it was not calibrated on; keeping the noisiest tensors float
buys the budget back but also most of int8's speed. Fine-tuning with the rounding in the loop
lets the weights move to where the rounding costs least.

The head is trained as the runtimes quantize it, in eager PyTorch, so one tuned checkpoint serves
every format: per-output-channel symmetric int8 weights, and a per-tensor asymmetric int8 range for
every conv input and for the output, kept separately for each call of a tied unit (the runtimes
calibrate each call). Ranges follow a moving min/max of the batches, as a calibration would see
them. The loss is the distance to the untouched fp32 model's own output on training crops
(distillation), so the tuned model aims at the model it replaces, GAN models included, and needs
no HR photos. Rounding passes gradients straight through (inside the range).

Measured (benchmarks/results/README.md, "Quantization-aware fine-tuning"): it helps, but little.
pcarn-m x2 plain int8 on the held-out photos went from +0.272 to +0.226 dB against the untuned
model; Adam moves every weight by about the learning rate each step, so the tuned model's own fp32
drifts (-0.031 dB), and a higher rate drifted more than the rounding gained.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.pcarn import PCARN, single_scale
from toolkit.calibration import CalibrationSet
from toolkit.errors import PcarnError
from toolkit.int8_rounding import int8_rounded_straight_through
from toolkit.weights.checkpoint import load_checkpoint, read_metadata, save_checkpoint, weights_sha256

MOMENTUM = 0.01  # of the moving min/max, per step


class _Range(nn.Module):
    """The range of one activation, and its fake quantization (int8, asymmetric): a moving min/max
    of the batches, or (``moving=False``) the min/max of every batch seen, as export calibrates."""

    def __init__(self, moving: bool = True) -> None:
        super().__init__()
        self.moving = moving
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("seen", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                low, high = x.min().clamp(max=0.0), x.max().clamp(min=0.0)
                if not bool(self.seen):
                    self.low.copy_(low), self.high.copy_(high), self.seen.fill_(True)
                elif self.moving:
                    self.low.lerp_(low, MOMENTUM), self.high.lerp_(high, MOMENTUM)
                else:
                    torch.minimum(self.low, low, out=self.low), torch.maximum(self.high, high, out=self.high)
        scale = float(max(self.high - self.low, 1e-8)) / 255.0
        zero = int(round(-128 - float(self.low) / scale))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, -128, 127)


class FakeQuantConv(nn.Module):
    """A conv whose input (one range per call within a forward) and weights are rounded to int8."""

    def __init__(self, conv: nn.Conv2d, calls: int, moving: bool = True) -> None:
        super().__init__()
        self.conv = conv
        self.inputs = nn.ModuleList(_Range(moving) for _ in range(calls))
        self.call = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inputs[min(self.call, len(self.inputs) - 1)](x)
        self.call += 1
        conv = self.conv
        return F.conv2d(
            x,
            int8_rounded_straight_through(conv.weight),
            conv.bias,
            conv.stride,
            conv.padding,
            1,
            conv.groups,
        )


class FakeQuantHead(nn.Module):
    """``model``'s ``scale`` head with every conv a :class:`FakeQuantConv` and the output rounded;
    ``model`` itself is trained through it (its convs are wrapped in place)."""

    def __init__(self, model: PCARN, scale: int, moving: bool = True) -> None:
        super().__init__()
        model.head_name(scale)
        self.model, self.scale = model, scale
        calls = model.config.units if model.config.tied_units else 1
        self.convs: list[FakeQuantConv] = []
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Conv2d):
                    tied = parent is not model and model.config.tied_units and _in_unit(model, parent)
                    wrapped = FakeQuantConv(child, calls if tied else 1, moving)
                    setattr(parent, name, wrapped)
                    self.convs.append(wrapped)
        self.output = _Range(moving)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            conv.call = 0
        return self.output(self.model(x, self.scale))


def _in_unit(model: PCARN, module: nn.Module) -> bool:
    return any(module is unit for block in model.blocks for unit in block.units)


def unwrapped(model: PCARN) -> PCARN:
    """A plain copy of a model trained through :class:`FakeQuantHead`: its convs unwrapped."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, FakeQuantConv):
                setattr(parent, name, child.conv)
    return model


@dataclass(frozen=True)
class TuningPlan:
    """A short, seeded run: what `pcarn int8-tune` does per head."""

    steps: int = 400
    batch: int = 8
    patch: int = 48  # LR crop side
    lr: float = 2e-5
    seed: int = 0
    loss: str = "l1"  # or "l2", the squared error PSNR counts (it drifted further: README of results)
    ranges: str = "min-max"  # every batch's, as export calibrates; or "moving" (tuned less well)


PATCH_SEED = 11  # apart from the calibration crops' seed (0) and the mixed choice's (1)


def training_patches(photos: CalibrationSet, scale: int, plan: TuningPlan, count: int) -> torch.Tensor:
    """``count`` LR crops (N, 3, P, P) of the photos, downscaled by ``scale`` as inputs are."""
    crops = photos.crops(scale, (plan.patch, plan.patch), count, seed=PATCH_SEED + plan.seed)
    return torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2)).contiguous()


def tune_head(
    teacher: PCARN,
    scale: int,
    patches: torch.Tensor,
    plan: TuningPlan,
    progress=None,
) -> tuple[PCARN, list[float]]:
    """A copy of ``teacher`` fine-tuned for its ``scale`` head under int8 rounding, on LR
    ``patches`` (N, 3, P, P) in [0, 1]; with the loss per step. ``progress(step, loss)`` is
    called after each step."""
    torch.manual_seed(plan.seed)
    generator = torch.Generator().manual_seed(plan.seed)
    teacher = teacher.eval()
    student = copy.deepcopy(teacher).train()
    head = FakeQuantHead(student, scale, moving=plan.ranges == "moving").train()
    optimizer = torch.optim.Adam(student.parameters(), lr=plan.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, plan.steps)
    losses = []
    for step in range(plan.steps):
        pick = torch.randint(len(patches), (plan.batch,), generator=generator)
        x = patches[pick]
        if step % 2:
            x = x.flip(-1)
        with torch.no_grad():
            target = teacher(x, scale)
        loss = (F.mse_loss if plan.loss == "l2" else F.l1_loss)(head(x), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, losses[-1])
    return unwrapped(student).eval(), losses


TUNING_KEY = "int8_tuning"  # the tuned checkpoint's ``source`` record


def save_tuned(tuned: PCARN, teacher: PCARN, scale: int, plan: TuningPlan, record: dict, path) -> dict:
    """``tuned``'s ``scale`` head as a single-scale checkpoint naming its teacher's weights."""
    source = {
        TUNING_KEY: {
            "scale": scale,
            "teacher_sha256": weights_sha256(teacher),
            "plan": dataclasses.asdict(plan),
            **record,
        }
    }
    return save_checkpoint(single_scale(tuned, scale), path, source=source)


def load_tuned(paths: list[str | os.PathLike], model: PCARN) -> dict[int, PCARN]:
    """Tuned heads (``save_tuned``'s files) by scale, each checked to be tuned from ``model``'s
    weights: refused in one line otherwise, before any export work."""
    teacher = weights_sha256(model)
    tuned: dict[int, PCARN] = {}
    for path in map(Path, paths):
        record = (read_metadata(path).get("source") or {}).get(TUNING_KEY)  # the header alone
        if record is None:
            raise PcarnError(f"{path} is not a tuned int8 head (made by pcarn int8-tune)")
        if record["teacher_sha256"] != teacher:
            raise PcarnError(f"{path} was tuned from other weights than the model being exported")
        scale = int(record["scale"])
        if scale in tuned:
            raise PcarnError(f"two tuned heads for x{scale}: keep one")
        tuned[scale], _ = load_checkpoint(path)
    return tuned
