"""One optimizer step of each stage and the paper's Adam, shared by the trainer and the throughput
benchmark (``benchmarks/train_throughput.py``), so what is timed is what ``pcarn train`` does."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.training.perceptual import perceptual_loss

ADAM = {"betas": (0.9, 0.999), "eps": 1e-8}  # section 3.5
CLIP = 10.0  # gradient-norm clip


def adam(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, **ADAM)


def l1_step(
    net: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    lr: torch.Tensor,
    hr: torch.Tensor,
    scale: int,
    *,
    clip: float = CLIP,
    autocast: contextlib.AbstractContextManager | None = None,
) -> dict:
    """Forward (``net``: the model or its DDP wrapper), L1 loss, backward, clip, Adam update."""
    with autocast or contextlib.nullcontext():
        sr = net(lr, scale)
        loss = F.l1_loss(sr.float(), hr)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    scaler.step(optimizer)
    scaler.update()
    return {"loss": loss.item(), "grad_norm": float(grad_norm)}


@dataclass
class GanNets:
    """What a GAN step updates and reads: the generator (``net`` may be its DDP wrapper), the
    multi-scale discriminator, the frozen perceptual network and both optimizers."""

    net: nn.Module
    model: nn.Module
    disc_net: nn.Module
    disc: nn.Module
    vgg: nn.Module
    optimizer: torch.optim.Optimizer
    disc_optimizer: torch.optim.Optimizer


class _Sections:
    """Seconds per named section of a step, when asked for (CPU work is synchronous)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into, self.last = into, time.perf_counter()

    def mark(self, name: str) -> None:
        if self.into is not None:
            now = time.perf_counter()
            self.into[name] = self.into.get(name, 0.0) + now - self.last
            self.last = now


def gan_step(
    nets: GanNets,
    lr: torch.Tensor,
    hr: torch.Tensor,
    scale: int,
    *,
    autocast: Callable[[], contextlib.AbstractContextManager],
    adv_weight: float,
    vgg_weight: float,
    clip: float = CLIP,
    timings: dict[str, float] | None = None,
) -> dict:
    """One discriminator and one generator update (Eq. 4-7). Every network runs inside ``autocast()``
    (bf16 on CPUs with native bf16: about 3x faster VGG convolutions); losses are reduced in fp32.
    ``timings`` (when given) accumulates seconds per section of the step."""
    bce = F.binary_cross_entropy
    ones = lambda t: torch.ones_like(t, dtype=torch.float32)  # noqa: E731
    sections = _Sections(timings)
    with autocast():
        sr = nets.net(lr, scale)
    sections.mark("generator forward")
    # Discriminator (Eq. 4, 6): SR is detached, so no gradient flows into the generator here.
    with autocast():
        real, fake = nets.disc_net(hr), nets.disc_net(sr.detach())
    loss_real = sum(bce(r.float(), ones(r)) for r in real)
    loss_fake = sum(bce(f.float(), torch.zeros_like(f, dtype=torch.float32)) for f in fake)
    loss_d = loss_real + loss_fake
    nets.disc_optimizer.zero_grad(set_to_none=True)
    loss_d.backward()
    nets.disc_optimizer.step()
    sections.mark("discriminator update")
    # Generator (Eq. 7): adversarial terms of all three discriminators plus the perceptual loss.
    with autocast():
        judged = nets.disc_net(sr)
    adversarial = sum(bce(f.float(), ones(f)) for f in judged)
    sections.mark("discriminator forward for the generator")
    with autocast():
        vgg = perceptual_loss(nets.vgg, sr, hr)
    sections.mark("perceptual forward")
    loss = adv_weight * adversarial + vgg_weight * vgg
    nets.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(nets.model.parameters(), clip)
    nets.optimizer.step()
    sections.mark("generator backward (through VGG and D) and Adam")
    return {
        "loss": loss.item(),
        "loss_d": loss_d.item(),
        "loss_d_real": loss_real.item(),
        "loss_d_fake": loss_fake.item(),
        "adversarial": adversarial.item(),
        "vgg": vgg.item(),
        "grad_norm": float(grad_norm),
    }
