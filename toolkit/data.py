"""Training data: HR folders or the DIV2K layout, decoded once into memory-mapped caches.

Decoding every JPEG every step would starve two cores, so each HR image (mod-cropped per scale) and
its bicubic LR are written once as ``.npy`` files under the run folder and memory-mapped by every
loader worker. A batch is a pure function of ``(seed, step)``, which makes resumed runs exact whatever
the number of workers.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from toolkit.atomic import atomic_path
from toolkit.errors import PcarnError
from toolkit.images import read_image

# Photos of shared/data/debian-photos.sh that are never trained on: the validation set that picks
# checkpoints (``--val held-out:PHOTOS/``), so the scikit-image photos stay a set we only report on.
HELD_OUT = (
    "lomiri-wallpapers-16.04--usr_share_backgrounds_Bridge_by_Sander_Klootwijk.jpg",
    "lxqt-themes--usr_share_lxqt_wallpapers_Butterfly-Kenneth-Wimer.jpg",
    "mate-backgrounds--usr_share_backgrounds_mate_nature_LadyBird.jpg",
    "mate-backgrounds--usr_share_backgrounds_mate_nature_Wood.jpg",
    "plasma-workspace-wallpapers--usr_share_wallpapers_FallenLeaf_contents_images_2560x1600.jpg",
)
HELD_OUT_LONG_SIDE = 1024  # shrunk like the training photos (--hr-max-side 1024) ...
HELD_OUT_CROP = 512  # ... then centre-cropped, so validation stays seconds on a CPU

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every image below ``folder`` (recursive), sorted for reproducibility."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise PcarnError(f"{folder} is a file; give a folder of photos")
    if not folder.is_dir():
        raise PcarnError(f"data folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise PcarnError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {folder}")
    return files


@dataclass(frozen=True)
class Pair:
    """One HR training image and, in the DIV2K layout, its official LR file per scale."""

    hr: Path
    lr: dict[int, Path]


def discover(root: str | os.PathLike, scales: tuple[int, ...]) -> list[Pair]:
    """A plain folder of HR images, or ``DIV2K_train_HR/`` with ``DIV2K_train_LR_bicubic/X{s}/``."""
    root = Path(root)
    hr_dir = root / "DIV2K_train_HR"
    if not hr_dir.is_dir():
        kept = [p for p in list_images(root) if p.name not in HELD_OUT]
        if not kept:
            raise PcarnError(f"{root} holds only held-out validation photos (toolkit.data.HELD_OUT)")
        return [Pair(p, {}) for p in kept]
    lr_root = root / "DIV2K_train_LR_bicubic"
    pairs = []
    for hr in list_images(hr_dir):
        lr = {}
        for s in scales:
            candidate = lr_root / f"X{s}" / f"{hr.stem}x{s}{hr.suffix}"
            if candidate.is_file():
                lr[s] = candidate
        pairs.append(Pair(hr, lr))
    return pairs


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """Antialiased bicubic downsampling (Pillow filters over the whole footprint, like MATLAB imresize)."""
    h, w = hr.shape[:2]
    return np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.Resampling.BICUBIC))


def fit_long_side(hr: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink ``hr`` (antialiased bicubic) so its long side is at most ``max_side``.

    Camera photos and wallpapers hold far less detail per pixel than DIV2K or the benchmark photos;
    shrinking them once densifies the detail every training patch sees.
    """
    h, w = hr.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return hr
    ratio = max_side / max(h, w)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    return np.asarray(Image.fromarray(hr).resize(size, Image.Resampling.BICUBIC))


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    h, w = lr.shape[:2]
    return np.asarray(Image.fromarray(lr).resize((w * scale, h * scale), Image.Resampling.BICUBIC))


def load_rgb8(path: Path) -> np.ndarray:
    """Any training image as 8-bit RGB (RGBA, grayscale and 16-bit converted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoded = read_image(path)
    return np.rint(np.clip(decoded.rgb, 0, 1) * 255).astype(np.uint8)


class PatchCache:
    """Memory-mapped uint8 HR/LR arrays, built once per (image, scale) under ``folder``."""

    def __init__(
        self,
        pairs: list[Pair],
        scales: tuple[int, ...],
        patch: int,
        folder: Path,
        progress: bool = True,
        hr_max_side: int | None = None,
        min_detail: float = 0.0,
    ):
        self.scales = scales
        self.min_detail = min_detail
        self.patch = patch
        folder.mkdir(parents=True, exist_ok=True)
        # Fail before training on unreadable files, naming them; skip too-small ones with a warning.
        self.entries: dict[int, list[tuple[Path, Path]]] = {s: [] for s in scales}
        for pair in tqdm(pairs, desc="caching images", unit="img", disable=not progress):
            stamp = f"{pair.hr.resolve()}:{pair.hr.stat().st_mtime_ns}:{hr_max_side or ''}"
            key = hashlib.sha1(stamp.encode()).hexdigest()[:16]
            # HR is stored once; mod-cropping is implicit because patches are cut at LR-aligned offsets.
            hr_file = folder / f"{key}_hr.npy"
            hr_full = None
            if not hr_file.is_file():
                hr_full = fit_long_side(self._read(pair.hr), hr_max_side)
                _save_npy(hr_file, hr_full)
            for s in scales:
                lr_file = folder / f"{key}_x{s}_lr.npy"
                if not lr_file.is_file():
                    hr_full = hr_full if hr_full is not None else np.load(hr_file)
                    hr = mod_crop(hr_full, s)
                    # Official LR files match the full-size HR only; a shrunk HR gets its own LR.
                    official = s in pair.lr and not hr_max_side
                    lr = self._read(pair.lr[s]) if official else bicubic_downscale(hr, s)
                    if lr.shape[0] * s != hr.shape[0] or lr.shape[1] * s != hr.shape[1]:
                        raise PcarnError(f"{pair.lr.get(s)} is not {pair.hr} downscaled by {s}")
                    _save_npy(lr_file, lr)
                lr_shape = np.load(lr_file, mmap_mode="r").shape
                if min(lr_shape[:2]) < patch:
                    print(
                        f"warning: skipping {pair.hr} at x{s}: LR {lr_shape[1]}x{lr_shape[0]} is smaller "
                        f"than the {patch}px patch",
                        file=sys.stderr,
                    )
                    continue
                self.entries[s].append((hr_file, lr_file))
        empty = [s for s in scales if not self.entries[s]]
        if empty:
            raise PcarnError(f"no training image is large enough for a {patch}px LR patch at x{empty[0]}")
        self._maps: dict[Path, np.ndarray] = {}

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        try:
            return load_rgb8(path)
        except PcarnError as exc:
            raise PcarnError(f"cannot use training image: {exc}") from None

    def array(self, path: Path) -> np.ndarray:
        if path not in self._maps:  # opened lazily, so each worker process maps its own view
            self._maps[path] = np.load(path, mmap_mode="r")
        return self._maps[path]

    def __getstate__(self):
        return {**self.__dict__, "_maps": {}}

    def sample(self, rng: np.random.Generator, scale: int) -> tuple[np.ndarray, np.ndarray]:
        """A random aligned LR/HR patch pair with a random flip and 90-degree rotation (section 3.5).

        With ``min_detail`` > 0, flat crops (LR mean absolute neighbour difference below it, in 8-bit
        levels) are redrawn up to ``DETAIL_TRIES`` times, keeping the most detailed candidate: sky and
        bokeh teach a super-resolver nothing, and photo collections are full of them.
        """
        best, best_detail = None, -1.0
        for _ in range(DETAIL_TRIES if self.min_detail > 0 else 1):
            lr, hr = self._crop(rng, scale)
            if self.min_detail <= 0:
                best = (lr, hr)
                break
            detail = lr_detail(lr)
            if detail > best_detail:
                best, best_detail = (lr, hr), detail
            if detail >= self.min_detail:
                break
        lr, hr = best
        if rng.random() < 0.5:
            lr, hr = lr[:, ::-1], hr[:, ::-1]
        k = int(rng.integers(4))
        return np.rot90(lr, k), np.rot90(hr, k)

    def _crop(self, rng: np.random.Generator, scale: int) -> tuple[np.ndarray, np.ndarray]:
        hr_file, lr_file = self.entries[scale][rng.integers(len(self.entries[scale]))]
        lr_img, hr_img = self.array(lr_file), self.array(hr_file)
        p = self.patch
        y, x = rng.integers(lr_img.shape[0] - p + 1), rng.integers(lr_img.shape[1] - p + 1)
        lr = lr_img[y : y + p, x : x + p]
        hr = hr_img[y * scale : (y + p) * scale, x * scale : (x + p) * scale]
        return lr, hr


DETAIL_TRIES = 8


def lr_detail(lr: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (8-bit levels), both directions."""
    lr = lr.astype(np.int16)
    return float((np.abs(np.diff(lr, axis=0)).mean() + np.abs(np.diff(lr, axis=1)).mean()) / 2)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, np.ascontiguousarray(array))


class StepBatches(torch.utils.data.Dataset):
    """Item ``k`` is the whole batch of step ``k``: one scale per batch, as in the paper."""

    def __init__(self, cache: PatchCache, batch: int, seed: int, rank: int = 0):
        self.cache, self.batch, self.seed, self.rank = cache, batch, seed, rank

    def __len__(self) -> int:
        return 1 << 62

    def scale_of(self, step: int) -> int:
        # The scale depends on the step only, so every DDP rank trains the same head at once.
        rng = np.random.default_rng([self.seed, step, 1 << 20])
        return int(self.cache.scales[rng.integers(len(self.cache.scales))])

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        scale = self.scale_of(step)
        rng = np.random.default_rng([self.seed, step, self.rank])
        pairs = [self.cache.sample(rng, scale) for _ in range(self.batch)]
        lr = np.stack([p[0] for p in pairs]).transpose(0, 3, 1, 2)
        hr = np.stack([p[1] for p in pairs]).transpose(0, 3, 1, 2)
        to_float = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float().div_(255.0)  # noqa: E731
        return to_float(lr), to_float(hr), scale


class StepSampler(torch.utils.data.Sampler):
    """Yields step numbers from ``start`` to ``stop``; a resumed run simply starts later."""

    def __init__(self, start: int, stop: int):
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def make_loader(dataset: StepBatches, start: int, stop: int, workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        sampler=StepSampler(start, stop),
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
