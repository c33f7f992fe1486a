"""What every format's graph checks share: the expectation read off the PyTorch head, the report,
and the checks whose rule is the same in every format.

Each format's own checker (``export/<format>/checks.py``) reads its file back (never the exporter's
own view of it): 1. grouped convs stay single grouped convs; 2. activations fused where the format
fuses them; 3. one depth-to-space per upsampling stage and no tensor of rank > 4; 4. weight sharing
kept (unique constant bytes <= 1.05x the head's unique parameter bytes); 5. format-specific rules
(XNNPACK's op list, integer graphs); 6. an op histogram.
"""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from export.common import DeployHead
from export.options import QUANTIZED_PRECISIONS

WEIGHT_SLACK = 1.05


@dataclass
class Expectation:
    """What the PyTorch head says the file must contain."""

    grouped_convs: int
    groups: int
    convs: int
    upsample_stages: int
    unique_param_count: int
    unique_bias_count: int = 0
    call_bias_count: int = 0  # biases counted at every call: a tied unit's calls count each time

    def weight_bytes(self, precision: str) -> int:
        if precision in QUANTIZED_PRECISIONS:
            # int8 weights once, with a float scale per output channel; an int32 bias (and its
            # scale, which ExecuTorch stores) per call: an integer bias is in units of the call's
            # input scale times the weight scale, and a tied unit's calls see different inputs
            calls = max(self.call_bias_count, self.unique_bias_count)
            weights = self.unique_param_count - self.unique_bias_count
            return weights + 4 * self.unique_bias_count + 8 * calls
        return self.unique_param_count * (2 if precision == "fp16" else 4)


def expectation(head: DeployHead) -> Expectation:
    calls: list[torch.nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda mod, *_: calls.append(mod))
        for m in head.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        head(torch.rand(1, 3, 8, 8))
    for h in hooks:
        h.remove()
    return Expectation(
        grouped_convs=sum(1 for c in calls if c.groups > 1),
        groups=head.net.config.groups,
        convs=len(calls),
        upsample_stages=len(head.net.heads[f"x{head.scale}"].factors),
        unique_param_count=sum(p.numel() for p in head.parameters()),
        unique_bias_count=sum(p.numel() for name, p in head.named_parameters() if name.endswith("bias")),
        call_bias_count=sum(c.bias.numel() for c in calls if c.bias is not None),
    )


@dataclass
class GraphReport:
    ops: dict[str, int]
    checks: dict[str, dict] = field(default_factory=dict)

    def add(self, name: str, passed: bool | None, detail: str) -> None:
        self.checks[name] = {"passed": passed, "detail": detail}

    @property
    def passed(self) -> bool:
        return all(c["passed"] is not False for c in self.checks.values())


def unique_bytes(arrays) -> int:
    seen: dict[str, int] = {}
    for array in arrays:
        data = np.ascontiguousarray(array).tobytes()
        seen.setdefault(hashlib.sha1(data).hexdigest(), len(data))
    return sum(seen.values())


def weight_check(
    report: GraphReport, unique: int, exp: Expectation, precision: str, mixed: bool = False
) -> None:
    """Tied weights stored once; ``mixed``: an int8 file with float convs may hold a weight in both
    forms (int8 and fp32), still never once per call."""
    expected = exp.weight_bytes(precision) + (exp.weight_bytes("fp32") if mixed else 0)
    limit = WEIGHT_SLACK * expected
    report.add(
        "weight_sharing",
        unique <= limit,
        f"{unique:,} unique constant bytes vs {expected:,} head parameter bytes"
        f"{' (int8 and fp32 copies: some convs run float)' if mixed else ''} "
        f"({unique / expected:.3f}x, limit {WEIGHT_SLACK}x)",
    )


def grouped_check(report: GraphReport, grouped: int, split_ops: int, exp: Expectation) -> None:
    ok = grouped == exp.grouped_convs and split_ops == 0
    report.add(
        "grouped_convs",
        ok,
        f"{grouped} grouped convs (groups={exp.groups}), expected "
        f"{exp.grouped_convs}; {split_ops} split/slice ops",
    )


def counted(counter: collections.Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"
