"""PCARN / PCARN-M generators (Ahn et al., sections 3.1 and 3.3) and their CARN ancestors.

One frozen :class:`PCARNConfig` describes every variant; :data:`PRESETS` names the ones people use.
The module order follows the timm convention: blocks, the model, then the named builders.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


@dataclass(frozen=True)
class PCARNConfig:
    """Everything needed to rebuild a generator; stored verbatim in checkpoints."""

    channels: int = 64
    blocks: int = 3  # B, cascading blocks (section 3.5)
    units: int = 3  # U, residual units per cascading block
    unit: str = "residual"  # "residual" (Fig. 2a) or "eresidual" (Fig. 4a)
    groups: int = 1  # group count of the EResidual 3x3 convs and of the upsampling convs
    tied_units: bool = False  # one unit shared by the U positions of a block (Fig. 4b)
    fusion_relu: bool = False  # CARN had ReLU after each 1x1 fusion conv; PCARN removed it
    global_residual: bool = True  # PCARN's O = H^B + H^0 before upsampling (section 3.1)
    scales: tuple[int, ...] = (2, 3, 4)
    rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN

    def __post_init__(self) -> None:
        if self.unit not in ("residual", "eresidual"):
            raise ValueError(f"unit must be 'residual' or 'eresidual', got {self.unit!r}")
        if self.unit == "residual" and self.groups != 1:
            raise ValueError("a standard residual unit has no groups; use unit='eresidual'")
        if self.channels % self.groups:
            raise ValueError(f"channels={self.channels} is not divisible by groups={self.groups}")
        if min(self.blocks, self.units, self.channels) < 1:
            raise ValueError("channels, blocks and units must be positive")
        bad = [s for s in self.scales if s not in (2, 3, 4)]
        if bad or not self.scales or len(set(self.scales)) != len(self.scales):
            raise ValueError(f"scales must be distinct values from (2, 3, 4), got {self.scales}")
        if len(self.rgb_mean) != 3:
            raise ValueError("rgb_mean needs three values")
        # JSON round trips give lists; keep the dataclass hashable and comparable.
        object.__setattr__(self, "scales", tuple(int(s) for s in self.scales))
        object.__setattr__(self, "rgb_mean", tuple(float(m) for m in self.rgb_mean))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PCARNConfig:
        """Build from a stored dict; unknown keys raise instead of being dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown PCARNConfig option(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes) -> PCARNConfig:
        return dataclasses.replace(self, **changes)


def _conv(c_in: int, c_out: int, kernel: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups)


class ResidualUnit(nn.Module):
    """Standard residual block R (Fig. 2a): conv-ReLU-conv, add, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels, 3)
        self.conv2 = _conv(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))
        return F.relu(self.conv2(out) + x)


class EResidualUnit(nn.Module):
    """Efficient residual block (Fig. 4a): two grouped 3x3 convs and a pointwise conv."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels, 3, groups)
        self.conv2 = _conv(channels, channels, 3, groups)
        self.pw = _conv(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))
        out = F.relu(self.conv2(out))
        return F.relu(self.pw(out) + x)


def cascade(x: torch.Tensor, steps: nn.ModuleList, fusions: nn.ModuleList, fusion_relu: bool) -> torch.Tensor:
    """Cascading (Eq. 2 and 3): concatenate every earlier output, fuse with a 1x1 conv.

    The same wiring serves the local level (steps are residual units) and the global level (steps
    are cascading blocks). A single step is reused at every position (weight tying, Fig. 4b).
    """
    cat = out = x
    for i, fusion in enumerate(fusions):
        step = steps[i if len(steps) > 1 else 0]
        cat = torch.cat([cat, step(out)], dim=1)
        out = fusion(cat)
        if fusion_relu:
            out = F.relu(out)
    return out


def _fusions(channels: int, n_steps: int) -> nn.ModuleList:
    """1x1 convs fusing 2C, 3C, ... (n_steps + 1)C channels back to C."""
    return nn.ModuleList(_conv(channels * (i + 2), channels, 1) for i in range(n_steps))


class CascadingBlock(nn.Module):
    """Local cascading block B_local (Fig. 2b; Fig. 4b when its units are tied)."""

    def __init__(self, config: PCARNConfig) -> None:
        super().__init__()
        c = config.channels
        n_modules = 1 if config.tied_units else config.units
        if config.unit == "eresidual":
            units = [EResidualUnit(c, config.groups) for _ in range(n_modules)]
        else:
            units = [ResidualUnit(c) for _ in range(n_modules)]
        self.units = nn.ModuleList(units)
        self.fusions = _fusions(c, config.units)
        self.fusion_relu = config.fusion_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cascade(x, self.units, self.fusions, self.fusion_relu)


class UpsampleHead(nn.Module):
    """One scale head: (conv to r^2 C, ReLU, pixel shuffle r) per stage; x4 is two x2 stages."""

    def __init__(self, channels: int, scale: int, groups: int) -> None:
        super().__init__()
        factors = [2, 2] if scale == 4 else [scale]
        self.factors = factors
        self.stages = nn.ModuleList(_conv(channels, channels * r * r, 3, groups) for r in factors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, r in zip(self.stages, self.factors, strict=True):
            x = F.pixel_shuffle(F.relu(conv(x)), r)
        return x


class PCARN(nn.Module):
    """Multi-scale generator: every head of ``config.scales`` lives in one network."""

    def __init__(self, config: PCARNConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        # Frozen mean shift in/out; a buffer, not a parameter, so it is neither trained nor counted.
        mean = torch.tensor(config.rgb_mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("rgb_mean", mean, persistent=False)
        self.entry = _conv(3, c, 3)
        self.blocks = nn.ModuleList(CascadingBlock(config) for _ in range(config.blocks))
        self.fusions = _fusions(c, config.blocks)
        self.heads = nn.ModuleDict({f"x{s}": UpsampleHead(c, s, config.groups) for s in config.scales})
        self.exit = _conv(c, 3, 3)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Section 4.2's best scheme: weights U(±sqrt(1/fan_in)), biases zero."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        """Map an RGB batch in [0, 1] (N, 3, H, W) to (N, 3, scale*H, scale*W); not clamped."""
        head = self.heads[self.head_name(scale)]
        return self.exit(head(self.trunk(x - self.rgb_mean))) + self.rgb_mean

    def trunk(self, x_centered: torch.Tensor) -> torch.Tensor:
        """Entry conv, global cascade of blocks and the global residual O = H^B + H^0 (section 3.1).

        Takes the mean-subtracted image; shared by forward() and the exporters' single-head graphs.
        """
        h0 = self.entry(x_centered)
        features = cascade(h0, self.blocks, self.fusions, self.config.fusion_relu)
        return features + h0 if self.config.global_residual else features

    def head_name(self, scale: int) -> str:
        if scale not in self.config.scales:
            raise ValueError(f"scale {scale} is not supported; this model has {list(self.config.scales)}")
        return f"x{scale}"


def single_scale(model: PCARN, scale: int) -> PCARN:
    """A copy of ``model`` holding only its ``scale`` head (the shared body and that head, its own
    tensors): what one deployed head or one tuned head carries."""
    model.head_name(scale)
    net = PCARN(model.config.replace(scales=(scale,)))
    own = net.state_dict()
    net.load_state_dict({k: v.detach().clone() for k, v in model.state_dict().items() if k in own})
    return net


PRESETS: dict[str, PCARNConfig] = {
    "pcarn": PCARNConfig(),
    "pcarn-m": PCARNConfig(unit="eresidual", groups=4, tied_units=True),
    "carn": PCARNConfig(fusion_relu=True, global_residual=False),
    "carn-m": PCARNConfig(
        unit="eresidual", groups=4, tied_units=True, fusion_relu=True, global_residual=False
    ),
    # Same wiring as pcarn-m at a size that runs in milliseconds, for tests.
    "pcarn-test": PCARNConfig(channels=8, blocks=2, units=2, unit="eresidual", groups=2, tied_units=True),
}


def build_model(variant: str, **overrides) -> PCARN:
    """Build a named preset, optionally overriding config fields (e.g. ``scales=(4,)``)."""
    if variant not in PRESETS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(PRESETS)}")
    return PCARN(PRESETS[variant].replace(**overrides) if overrides else PRESETS[variant])


def variant_of(config: PCARNConfig) -> str | None:
    """Name of the preset whose architecture matches ``config`` (ignoring which heads exist)."""
    for name, preset in PRESETS.items():
        if preset.replace(scales=config.scales) == config:
            return name
    return None


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, tied weights counted once (the frozen mean shift is a buffer)."""
    return sum(p.numel() for p in model.parameters())


def head_parameters(model: PCARN) -> dict[str, int]:
    """Parameters that a single-scale deployment of each head carries (shared body + that head)."""
    total = count_parameters(model)
    heads = {name: count_parameters(head) for name, head in model.heads.items()}
    shared = total - sum(heads.values())
    return {name: shared + n for name, n in heads.items()}
