"""Pure torch architectures of the PCARN family; nothing here knows about files or runtimes."""

from models.discriminator import Discriminator, MultiScaleDiscriminator
from models.pcarn import (
    PCARN,
    PRESETS,
    PCARNConfig,
    build_model,
    count_parameters,
    head_parameters,
    single_scale,
    variant_of,
)

__all__ = [
    "PCARN",
    "PRESETS",
    "Discriminator",
    "MultiScaleDiscriminator",
    "PCARNConfig",
    "build_model",
    "count_parameters",
    "head_parameters",
    "single_scale",
    "variant_of",
]
