"""Calibration inputs for int8 exports: seeded LR crops of real photos at a file's input size.

Activation ranges are only as good as the inputs they are measured on, so they come from real
photos, downscaled the way the network's inputs are (antialiased bicubic by the head's scale), never
from the validation photos the quantization cost is measured on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.data import HELD_OUT, bicubic_downscale, fit_long_side, list_images, load_rgb8, mod_crop
from toolkit.errors import PcarnError
from toolkit.metrics.evaluate import SKIMAGE_VALIDATION
from toolkit.provenance import REPO_ROOT

DEFAULT_SAMPLES = 8
# Where `shared/data/debian-photos.sh data/debian-photos` puts the offline photo set.
DEFAULT_FOLDER = REPO_ROOT / "data" / "debian-photos"
# scikit-image's colour photos that are not validation photos (the fallback set).
SKIMAGE_CALIBRATION = ("hubble_deep_field", "ihc", "retina", "chessboard_RGB", "color")


@dataclass(frozen=True)
class CalibrationSet:
    """The photos (files, read when a crop needs them, or uint8 RGB arrays) activations are
    calibrated on, and where they came from."""

    photos: tuple[Path | np.ndarray, ...]
    source: str
    note: str | None = None

    def crops(
        self, scale: int, size: tuple[int, int], samples: int = DEFAULT_SAMPLES, seed: int = 0
    ) -> list[np.ndarray]:
        """``samples`` float32 HxWx3 LR crops in [0, 1] at ``size``, a fixed choice for ``seed``:
        the photos in turn, each bicubic-downscaled by ``scale`` (edge-padded where smaller)."""
        if samples < 1:
            raise PcarnError(f"--calib-samples must be at least 1, got {samples}")
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.photos))
        lrs: dict[int, np.ndarray] = {}
        out = []
        for k in range(samples):
            index = int(order[k % len(order)])
            if index not in lrs:
                lrs[index] = _at_least(bicubic_downscale(_read(self.photos[index]), scale), size)
            lr = lrs[index]
            y0 = int(rng.integers(0, lr.shape[0] - size[0] + 1))
            x0 = int(rng.integers(0, lr.shape[1] - size[1] + 1))
            out.append(lr[y0 : y0 + size[0], x0 : x0 + size[1]].astype(np.float32) / 255.0)
        return out

    def pairs(
        self, scale: int, size: tuple[int, int], samples: int, seed: int, long_side: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``samples`` aligned (LR float32 HxWx3 in [0, 1] at ``size``, HR uint8 at ``scale`` times
        it) crops, a fixed choice for ``seed``, of the photos shrunk to ``long_side`` where larger:
        what a quantization choice is judged on, so it can weigh rounding noise against the
        network's own error."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.photos))
        out = []
        for k in range(samples):
            photo = fit_long_side(_read(self.photos[int(order[k % len(order)])]), long_side)
            hr = _at_least(mod_crop(photo, scale), _times(size, scale))
            lr = bicubic_downscale(hr, scale)
            y0 = int(rng.integers(0, lr.shape[0] - size[0] + 1))
            x0 = int(rng.integers(0, lr.shape[1] - size[1] + 1))
            crop = lr[y0 : y0 + size[0], x0 : x0 + size[1]].astype(np.float32) / 255.0
            out.append((crop, hr[y0 * scale : (y0 + size[0]) * scale, x0 * scale : (x0 + size[1]) * scale]))
        return out


def _times(size: tuple[int, int], scale: int) -> tuple[int, int]:
    return size[0] * scale, size[1] * scale


def _read(photo: Path | np.ndarray) -> np.ndarray:
    if isinstance(photo, np.ndarray):
        return photo
    try:
        return load_rgb8(photo)
    except PcarnError as exc:  # it names the file and the problem already
        raise PcarnError(f"calibration photo cannot be read: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any decoder error is reported the same way
        raise PcarnError(f"calibration photo {photo} cannot be read: {exc}") from None


def _at_least(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    pad_h, pad_w = max(0, size[0] - image.shape[0]), max(0, size[1] - image.shape[1])
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return image


def calibration_set(folder: str | os.PathLike | None = None) -> CalibrationSet:
    """Photos from ``folder``; by default the Debian photos in ``data/debian-photos`` (or
    ``$PCARN_CALIB``), else scikit-image's non-validation photos, with a note saying so."""
    if folder is None:
        folder = os.environ.get("PCARN_CALIB") or (DEFAULT_FOLDER if DEFAULT_FOLDER.is_dir() else None)
    if folder is None:
        return CalibrationSet(
            _skimage_photos(),
            "skimage-calibration",
            note=(
                f"calibrated on scikit-image's {len(SKIMAGE_CALIBRATION)} non-validation photos: the "
                "Debian photos were not found (run shared/data/debian-photos.sh data/debian-photos, "
                "or pass --calib DIR)"
            ),
        )
    folder = Path(folder)
    # a missing or empty folder is one clear error; the held-out photos stay unseen (they report
    # what quantization costs on photos nothing was tuned on)
    paths = [p for p in list_images(folder) if p.name not in HELD_OUT]
    if not paths:
        raise PcarnError(f"calibration folder {folder} holds only held-out photos (toolkit.data.HELD_OUT)")
    used = [p.stem for p in paths if p.stem in SKIMAGE_VALIDATION]
    if used:
        raise PcarnError(
            f"calibration folder {folder} holds validation photos ({', '.join(used)}); remove them"
        )
    return CalibrationSet(tuple(paths), folder.name)


def _skimage_photos() -> tuple[np.ndarray, ...]:
    try:
        import skimage
    except ImportError:
        raise PcarnError("no calibration photos: pass --calib DIR (or install scikit-image)") from None
    data = Path(skimage.__file__).parent / "data"
    return tuple(load_rgb8(next(data.glob(f"{name}.*"))) for name in SKIMAGE_CALIBRATION)


def with_range_margin(crops: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """``crops`` plus each with its contrast doubled about mid-grey and one uniform-noise crop.

    Min-max ranges from a few photos clip the highlights and edges of photos they never saw; a
    16-bit activation has 256 times the resolution of an 8-bit one, so its ranges can cover these
    harder inputs at no visible rounding cost (PCARN-M x2, ONNX W8A16: +0.088 dB on unseen photos
    calibrated on 8 crops, +0.004 dB with the margin). 8-bit ranges cannot: the same margin made
    int8 worse (+0.123 -> +0.253 dB)."""
    if not crops:
        return []
    harder = [np.clip((c - 0.5) * 2.0 + 0.5, 0.0, 1.0).astype(np.float32) for c in crops]
    noise = np.random.default_rng(seed).random(crops[0].shape, dtype=np.float32)
    return [*crops, *harder, noise]
