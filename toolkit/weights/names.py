"""Names of the models this toolkit ships, importable without torch (the CLI's choices use them)."""

from __future__ import annotations

# Until a trained checkpoint of ours ships, a shipped name falls back to the authors' weights of the
# same stage: L1 for the PSNR-oriented models, GAN for the photo-realistic ones.
SHIPPED_FALLBACK = {
    "pcarn-m": "PCARN-M-L1",
    "pcarn": "PCARN-L1",
    "pcarn-m-gan": "PCARN-M",
    "pcarn-gan": "PCARN",
}
SHIPPED_NAMES = tuple(SHIPPED_FALLBACK)
# What `pcarn deploy` exports by default: the photo-realistic PCARN-M (the app developer's usual choice)
# and its PSNR-oriented stage-1 sibling; PCARN and PCARN-GAN on request (--models), to keep it quick.
DEPLOY_DEFAULT = ("pcarn-m-gan", "pcarn-m")
