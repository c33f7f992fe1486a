"""Reading any image Pillow opens into float RGB (+ alpha), and writing 8-bit results atomically."""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from toolkit.atomic import atomic_path, check_output_folder
from toolkit.errors import PcarnError

WRITERS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")

# A small real photo shipped with the package (README.md beside it): parity's and the wheel test's input.
SAMPLE_PHOTO = Path(__file__).with_name("assets") / "rocket-lr.png"


@dataclass
class DecodedImage:
    """``rgb`` is float32 HxWx3 in [0, 1]; ``alpha`` float32 HxW or None; ``gray`` keeps L output."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    gray: bool


def _declares_zero_size(path: Path) -> bool:
    """Pillow refuses 0-pixel images outright; read the PNG/PNM header to say why."""
    head = path.read_bytes()[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big") == 0 or int.from_bytes(head[20:24], "big") == 0
    fields = head.split()
    if len(fields) >= 3 and fields[0] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"):
        return fields[1] == b"0" or fields[2] == b"0"
    return False


def _open(path: Path) -> tuple[Image.Image, Image.Image | None]:
    """The image as displayed (EXIF orientation applied; the tag is not carried to the output) and,
    for 16-bit RGB(A) PNGs, which Pillow decodes to their high bytes only, a second decode holding
    the low bytes."""
    if not path.exists():
        raise PcarnError(f"input file not found: {path}")
    if path.is_dir():
        raise PcarnError(f"input is a folder, not an image: {path}")
    if path.stat().st_size == 0:
        raise PcarnError(f"input file is empty (0 bytes): {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            _refuse_animation(image, path)
            wide = _sixteen_bit_rawmode(image)
            image.load()  # decode now so truncation is reported here, not later
            low = _low_bytes(path, wide) if wide else None
    except UnidentifiedImageError:
        if _declares_zero_size(path):
            raise PcarnError(f"image has zero size: {path}") from None
        raise PcarnError(f"not an image Pillow can read: {path}") from None
    except PermissionError:
        raise PcarnError(f"cannot read {path}: permission denied") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        limit = Image.MAX_IMAGE_PIXELS
        raise PcarnError(
            f"{path} declares more pixels than {limit:,} (Pillow's guard against decompression bombs); "
            "crop or shrink it first"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PcarnError(f"truncated or corrupt image {path} ({exc})") from None
    if image.width == 0 or image.height == 0:
        raise PcarnError(f"image has zero size: {path}")
    oriented = ImageOps.exif_transpose(image)
    return oriented, None if low is None else ImageOps.exif_transpose(low)


def _refuse_animation(image: Image.Image, path: Path) -> None:
    """An animation or a multi-page file is refused rather than cut to its first frame without a
    word; a camera's MPO JPEG is its primary photo plus previews, so its first frame is the photo."""
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "MPO":
        raise PcarnError(
            f"{path} holds {frames} frames (an animation or a multi-page file); pcarn upscales one "
            "still image: save the frame you want as a PNG first"
        )


def _sixteen_bit_rawmode(image: Image.Image) -> str | None:
    """The raw mode of a 16-bit-per-channel colour decode that Pillow narrows to 8 bits."""
    tile = image.tile[0] if len(image.tile) == 1 else None
    args = getattr(tile, "args", None)
    if image.mode in ("RGB", "RGBA") and args in ("RGB;16B", "RGBA;16B"):
        return args
    return None


def _low_bytes(path: Path, rawmode: str) -> Image.Image:
    """The same file decoded with the little-endian unpacker, which on big-endian samples keeps the
    low byte of each: with the normal decode's high bytes, the full 16 bits (filters are undone
    before unpacking, so both decodes see the same samples)."""
    image = Image.open(path)
    image.tile = [t._replace(args=rawmode.replace(";16B", ";16L")) for t in image.tile]
    image.load()
    return image


def decode(image: Image.Image) -> DecodedImage:
    """Convert any Pillow mode into the network's RGB [0, 1] plus a separate alpha plane."""
    mode = image.mode
    if mode in _SIXTEEN_BIT or mode == "F":
        data = np.asarray(image, dtype=np.float32)
        scale = 1.0 if mode == "F" else 65535.0
        gray = np.clip(data / scale, 0.0, 1.0)
        return DecodedImage(np.repeat(gray[..., None], 3, axis=2), None, True)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    gray = mode in ("1", "L", "LA", "La")
    converted = image.convert("RGBA" if has_alpha else "RGB")
    data = np.asarray(converted, dtype=np.float32) / 255.0
    alpha = data[..., 3].copy() if has_alpha else None
    return DecodedImage(np.ascontiguousarray(data[..., :3]), alpha, gray)


def read_image(path: str | os.PathLike) -> DecodedImage:
    image, low = _open(Path(path))
    if low is None:
        return decode(image)
    samples = np.asarray(image, dtype=np.float32) * 256.0 + np.asarray(low, dtype=np.float32)
    data = samples / 65535.0
    alpha = data[..., 3].copy() if image.mode == "RGBA" else None
    return DecodedImage(np.ascontiguousarray(data[..., :3]), alpha, False)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Clamp to [0, 1] and round to the nearest of 256 levels (never truncate)."""
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscaling of the alpha plane, which the network does not see."""
    h, w = alpha.shape
    plane = Image.fromarray(alpha.astype(np.float32), mode="F")
    return np.asarray(plane.resize((w * scale, h * scale), Image.Resampling.BICUBIC), dtype=np.float32)


def compose(rgb: np.ndarray, alpha: np.ndarray | None, gray: bool) -> Image.Image:
    """Build the output image from uint8 RGB (and uint8 alpha), in the input's colour kind."""
    image = Image.fromarray(rgb, mode="RGB")
    if gray:
        image = image.convert("L")
    if alpha is not None:
        image = image.convert("LA" if gray else "RGBA")
        image.putalpha(Image.fromarray(alpha, mode="L"))
    return image


def output_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in WRITERS:
        raise PcarnError(
            f"cannot write {suffix or 'files without a suffix'}; use one of {', '.join(WRITERS)}"
        )
    return WRITERS[suffix]


def write_image(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write by suffix through a temp file and a rename, so a failure never leaves half a file."""
    fmt = output_format(path)
    path = check_output_folder(path)
    options: dict = {}
    if fmt == "JPEG":
        if image.mode in ("RGBA", "LA"):
            print(f"warning: JPEG has no alpha channel; transparency dropped in {path}", file=sys.stderr)
            image = image.convert("L" if image.mode == "LA" else "RGB")
        options = {"quality": 95, "subsampling": 0}
    elif fmt == "WEBP":
        options = {"quality": 95}
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **options)
    return path
