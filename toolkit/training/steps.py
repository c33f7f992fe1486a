"""One stage-1 optimizer step and the paper's Adam, shared by the trainer and the throughput benchmark
(``benchmarks/train_throughput.py``), so what is timed is what ``pcarn train`` does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

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
