"""Training data: discovery, DIV2K layout, caching, skipping, aligned augmented patches."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from toolkit.data import PatchCache, StepBatches, bicubic_downscale, discover, fit_long_side, lr_detail
from toolkit.errors import PcarnError


def write_photos(folder, count=3, size=(64, 48), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        y, x = np.mgrid[0 : size[1], 0 : size[0]]
        base = np.stack([x * 3, y * 4, (x + y) * 2], axis=-1) + rng.integers(0, 40, (size[1], size[0], 3))
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(folder / f"photo{i}.png")
    return folder


def test_folder_is_searched_recursively(tmp_path):
    write_photos(tmp_path / "a" / "b", 2)
    Image.fromarray(np.zeros((40, 40), np.uint16)).save(tmp_path / "a" / "deep.tif")
    pairs = discover(tmp_path, (2,))
    assert len(pairs) == 3 and all(not p.lr for p in pairs)


def test_div2k_layout_uses_the_official_lr_files(tmp_path):
    hr_dir = write_photos(tmp_path / "DIV2K_train_HR", 1, size=(48, 48))
    hr = np.asarray(Image.open(hr_dir / "photo0.png"))
    lr_dir = tmp_path / "DIV2K_train_LR_bicubic" / "X2"
    lr_dir.mkdir(parents=True)
    official = np.full((24, 24, 3), 7, np.uint8)  # deliberately not our bicubic
    Image.fromarray(official).save(lr_dir / "photo0x2.png")
    pairs = discover(tmp_path, (2, 4))
    assert pairs[0].lr == {2: lr_dir / "photo0x2.png"}
    cache = PatchCache(pairs, (2, 4), 8, tmp_path / "cache", progress=False)
    _, lr_file = cache.entries[2][0]
    assert (np.load(lr_file) == 7).all()
    _, lr4 = cache.entries[4][0]
    assert np.array_equal(np.load(lr4), bicubic_downscale(hr, 4))


def test_small_images_are_skipped_with_a_warning(tmp_path, capsys):
    write_photos(tmp_path / "d", 1, size=(64, 64))
    write_photos(tmp_path / "d" / "tiny", 1, size=(20, 20))
    PatchCache(discover(tmp_path / "d", (2,)), (2,), 16, tmp_path / "cache", progress=False)
    err = capsys.readouterr().err
    assert "skipping" in err and "tiny" in err


def test_unreadable_file_stops_before_training_and_names_it(tmp_path):
    folder = write_photos(tmp_path / "d", 1)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(PcarnError, match="broken.jpg"):
        PatchCache(discover(folder, (2,)), (2,), 8, tmp_path / "cache", progress=False)


def test_batches_are_aligned_deterministic_and_one_scale_each(tmp_path):
    folder = write_photos(tmp_path / "d", 3)
    cache = PatchCache(discover(folder, (2, 3, 4)), (2, 3, 4), 8, tmp_path / "cache", progress=False)
    batches = StepBatches(cache, batch=4, seed=3)
    scales = set()
    for step in range(12):
        lr, hr, scale = batches[step]
        scales.add(scale)
        assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 8 * scale, 8 * scale)
        # each LR patch is the bicubic of its HR patch up to border effects: compare patch means
        assert np.allclose(lr.mean((2, 3)), hr.mean((2, 3)), atol=0.03)
    assert scales == {2, 3, 4}
    a, b = batches[5], batches[5]
    assert a[2] == b[2] and np.array_equal(a[0], b[0])
    assert (
        not np.array_equal(batches[6][0][:, :, :4], batches[7][0][:, :, :4]) or batches[6][2] != batches[7][2]
    )


def test_no_data_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PcarnError, match="no images"):
        discover(tmp_path / "empty", (2,))
    with pytest.raises(PcarnError, match="data folder not found"):
        discover(tmp_path / "missing", (2,))


def test_hr_max_side_shrinks_large_photos_once_and_regenerates_their_lr(tmp_path):
    hr_dir = write_photos(tmp_path / "DIV2K_train_HR", 1, size=(96, 64))
    lr_dir = tmp_path / "DIV2K_train_LR_bicubic" / "X2"
    lr_dir.mkdir(parents=True)
    Image.fromarray(np.full((32, 48, 3), 7, np.uint8)).save(lr_dir / "photo0x2.png")
    cache = PatchCache(discover(tmp_path, (2,)), (2,), 8, tmp_path / "cache", progress=False, hr_max_side=48)
    hr_file, lr_file = cache.entries[2][0]
    hr = np.load(hr_file)
    assert hr.shape == (32, 48, 3)
    full = np.asarray(Image.open(hr_dir / "photo0.png"))
    assert np.array_equal(hr, fit_long_side(full, 48))
    # the official LR belongs to the full-size HR, so a shrunk HR gets its own bicubic LR
    assert np.array_equal(np.load(lr_file), bicubic_downscale(hr, 2))
    assert fit_long_side(full, 200) is full


def test_min_detail_redraws_flat_crops(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    flat = np.full((64, 128, 3), 90, np.uint8)
    flat[:, 64:] = np.random.default_rng(0).integers(0, 255, (64, 64, 3))  # right half: pure texture
    Image.fromarray(flat).save(folder / "half.png")
    plain = PatchCache(discover(folder, (2,)), (2,), 8, tmp_path / "c0", progress=False)
    picky = PatchCache(discover(folder, (2,)), (2,), 8, tmp_path / "c1", progress=False, min_detail=4)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    plain_flat = sum(lr_detail(plain.sample(rng_a, 2)[0]) < 1 for _ in range(200))
    picky_flat = sum(lr_detail(picky.sample(rng_b, 2)[0]) < 1 for _ in range(200))
    assert plain_flat > 60  # about a third of random crops land in the flat half
    assert picky_flat <= 2  # eight tries leave a flat crop with probability (1/3)^8


def test_held_out_photos_are_never_trained_on_and_validate(tmp_path):
    from toolkit.data import HELD_OUT, HELD_OUT_CROP
    from toolkit.metrics.evaluate import validation_images

    write_photos(tmp_path, 2, size=(64, 48))
    rng = np.random.default_rng(1)
    for name in HELD_OUT:
        Image.fromarray(rng.integers(0, 255, (600, 700, 3), dtype=np.uint8)).save(tmp_path / name)
    pairs = discover(tmp_path, (2,))
    assert sorted(p.hr.name for p in pairs) == ["photo0.png", "photo1.png"]
    images = validation_images(f"held-out:{tmp_path}")
    assert len(images) == len(HELD_OUT)
    assert all(im.shape == (HELD_OUT_CROP, HELD_OUT_CROP, 3) for im in images.values())
    (tmp_path / HELD_OUT[0]).unlink()
    with pytest.raises(PcarnError, match="held-out photo"):
        validation_images(f"held-out:{tmp_path}")
