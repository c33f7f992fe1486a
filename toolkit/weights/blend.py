"""Network interpolation (ESRGAN's, section 3.3 of Wang et al. 2018): the weights of two checkpoints of
the same network mixed as (1 - alpha) A + alpha B. Between a PSNR-oriented model and its GAN
fine-tune this walks the perception-distortion curve without training, so an app picks its point."""

from __future__ import annotations

import torch

from models import PCARN
from toolkit.errors import PcarnError
from toolkit.weights.loading import LoadedModel


def blend_models(a: LoadedModel, b: LoadedModel, alpha: float) -> tuple[PCARN, dict]:
    """The blended network and the record of what it was made from; alpha = 0 is A exactly, 1 is B."""
    if not 0.0 <= alpha <= 1.0:
        raise PcarnError(f"--alpha must be between 0 (the first model) and 1 (the second), got {alpha}")
    if a.variant != b.variant:
        raise PcarnError(f"cannot blend a {a.variant} model ({a.path}) with a {b.variant} one ({b.path})")
    if a.model.config != b.model.config:
        differs = [k for k, v in a.model.config.to_dict().items() if b.model.config.to_dict().get(k) != v]
        raise PcarnError(f"cannot blend {a.path} with {b.path}: their configs differ in {', '.join(differs)}")
    model = blend_networks(a.model, b.model, alpha)
    record = {"kind": "blend", "alpha": alpha, "a": a.provenance, "b": b.provenance}
    return model, record


def blend_networks(a: PCARN, b: PCARN, alpha: float) -> PCARN:
    """(1 - alpha) a + alpha b, parameter by parameter (same config assumed); 0 and 1 copy exactly."""
    first, second = a.state_dict(), b.state_dict()
    mixed = {}
    for key, value in first.items():
        if alpha == 0.0 or not value.is_floating_point():
            mixed[key] = value.clone()
        elif alpha == 1.0:
            mixed[key] = second[key].clone()
        else:
            mixed[key] = torch.lerp(value.double(), second[key].double(), alpha).to(value.dtype)
    model = PCARN(a.config)
    model.load_state_dict(mixed)
    return model.eval()
