"""pcarn-toolkit's application layer: the Python API and, in ``pcarn.cli``, the ``pcarn`` command.

import pcarn

model = pcarn.open_model("pcarn-m-gan")            # a name, a checkpoint, or an exported file
pcarn.upscale("photo.png", 4, model).save("photo-x4.png")
"""

from pcarn.api import Opened, load_model, open_model, upscale, upscale_array

__all__ = ["Opened", "load_model", "open_model", "upscale", "upscale_array"]
