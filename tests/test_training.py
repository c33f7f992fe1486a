"""The trainer end to end on a tiny model: both stages, exact resume, kill -9, torchrun, errors."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_data import write_photos

from toolkit.errors import PcarnError
from toolkit.training.perceptual import VGGFeatures
from toolkit.training.trainer import TrainOptions, train
from toolkit.weights.checkpoint import load_checkpoint, read_metadata

REPO = Path(__file__).resolve().parents[1]
TINY = {"variant": "pcarn-test", "batch": 2, "patch": 8, "workers": 0, "progress": False, "threads": 1}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_photos(root / "train", 3, size=(72, 60))
    write_photos(root / "val", 1, size=(48, 36), seed=9)
    return root


def options(photos, out, **changes) -> TrainOptions:
    return TrainOptions(**{"data": str(photos / "train"), "out": str(out), **TINY, **changes})


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[0].state_dict()


def test_l1_run_writes_checkpoints_log_and_plot(photos, tmp_path):
    out = tmp_path / "run"
    last = train(
        options(photos, out, steps=6, val=str(photos / "val"), val_every=3, save_every=3, log_every=2)
    )
    assert {p.name for p in out.iterdir()} >= {
        "last.safetensors",
        "best.safetensors",
        "state.pt",
        "log.jsonl",
        "curves.png",
        "options.json",
        "cache",
    }
    metadata = read_metadata(last)
    assert metadata["training"]["steps"] == 6 and metadata["training"]["stage"] == "l1"
    best = read_metadata(out / "best.safetensors")
    assert set(best["metrics"]["values"]) == {"x2", "x3", "x4"}
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "val"] == [3, 6]
    assert all(r["loss"] > 0 for r in records if r["kind"] == "train")


def test_training_reduces_the_loss(photos, tmp_path):
    out = tmp_path / "run"
    train(options(photos, out, steps=60, batch=4, log_every=1, lr=3e-3, scales=(2,)))
    losses = [json.loads(x)["loss"] for x in (out / "log.jsonl").read_text().splitlines()]
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10


def test_resumed_run_matches_an_uninterrupted_one(photos, tmp_path):
    straight = train(options(photos, tmp_path / "a", steps=8, recipe="paper", save_every=4))
    train(options(photos, tmp_path / "b", steps=4, recipe="paper", save_every=4))
    resumed = train(options(photos, tmp_path / "b", steps=8, recipe="paper", save_every=4, resume=True))
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_after_kill_9(photos, tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "pcarn",
        "train",
        "--variant",
        "pcarn-test",
        "--data",
        str(photos / "train"),
        "--batch",
        "2",
        "--patch",
        "8",
        "--workers",
        "0",
        "--threads",
        "1",
        "--recipe",
        "paper",
        "--save-every",
        "1",
        "--quiet",
        "--out",
        str(out),
    ]
    scratch = tmp_path / "tmp"  # a killed command cannot remove its scratch folder: keep it here
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(scratch)}
    proc = subprocess.Popen(
        [*cmd, "--steps", "100000"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "log.jsonl").is_file():
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(out / "state.pt", weights_only=True)["step"]
    assert 0 < killed_at < 100000
    target = killed_at + 3
    done = subprocess.run([*cmd, "--steps", str(target), "--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    straight = train(options(photos, tmp_path / "straight", steps=target, recipe="paper", save_every=1))
    a, b = weights(straight), weights(out / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gan_stage_runs_end_to_end_with_a_tiny_vgg(photos, tmp_path):
    stage1 = train(options(photos, tmp_path / "l1", steps=2))
    tiny_vgg = VGGFeatures(width_divisor=16)
    out = tmp_path / "gan"
    last = train(
        options(photos, out, stage="gan", init=str(stage1), steps=4, save_every=2, patch=16, scales=(2,)),
        vgg=tiny_vgg,
    )
    records = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert {"loss_d", "adversarial", "vgg"} <= set(records[-1])
    state = torch.load(out / "state.pt", weights_only=True)
    assert "disc" in state and "disc_optimizer" in state
    assert not all(torch.equal(weights(stage1)[k], weights(last)[k]) for k in weights(stage1))
    resumed = train(
        options(
            photos,
            out,
            stage="gan",
            init=str(stage1),
            steps=6,
            save_every=2,
            resume=True,
            patch=16,
            scales=(2,),
        ),
        vgg=tiny_vgg,
    )
    assert read_metadata(resumed)["training"]["steps"] == 6


def test_gan_stage_with_the_offline_vgg16_keeps_the_best_lpips(photos, tmp_path):
    stage1 = train(options(photos, tmp_path / "l1", steps=2))
    out = tmp_path / "gan16"
    opts = options(
        photos,
        out,
        stage="gan",
        init=str(stage1),
        steps=4,
        patch=16,
        scales=(2,),
        perceptual="vgg16",
        val=str(photos / "val"),
        val_every=2,
        save_every=2,
    )
    train(opts)
    records = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    trained = [r for r in records if r["kind"] == "train"]
    assert {"adversarial", "vgg", "loss_d_real", "loss_d_fake"} <= set(trained[-1])
    assert trained[-1]["loss_d"] == pytest.approx(trained[-1]["loss_d_real"] + trained[-1]["loss_d_fake"])
    val = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in val] == [2, 4]
    assert all(
        0 < r["metrics"]["x2"]["lpips"] < 1 and r["mean_lpips"] == r["metrics"]["x2"]["lpips"] for r in val
    )
    best = read_metadata(out / "best.safetensors")
    best_lpips = min(r["mean_lpips"] for r in val)
    assert best["metrics"]["values"]["x2"]["lpips"] == pytest.approx(best_lpips)
    assert "VGG16 conv5_3" in best["training"]["perceptual"]
    assert best["training"]["options"]["perceptual"] == "vgg16"
    assert (out / "curves.png").stat().st_size > 10_000
    with pytest.raises(PcarnError, match="cannot resume: --perceptual was 'vgg16'"):
        train(
            dataclasses.replace(opts, perceptual="vgg19", resume=True, steps=6),
            vgg=VGGFeatures(width_divisor=16),
        )
    with pytest.raises(PcarnError, match="unknown --perceptual 'alexnet'"):
        options(photos, tmp_path / "x", perceptual="alexnet")


def test_gan_stage_needs_an_init_and_vgg_weights(photos, tmp_path, monkeypatch):
    with pytest.raises(PcarnError, match="pass --init"):
        train(
            options(photos, tmp_path / "x", stage="gan", steps=1, patch=16, scales=(2,)),
            vgg=VGGFeatures(width_divisor=16),
        )
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr("toolkit.training.perceptual.VGG19_URL", "http://127.0.0.1:9/vgg19-dcbb9e9d.pth")
    stage1 = train(options(photos, tmp_path / "l1", steps=1))
    with pytest.raises(
        PcarnError, match=r"put vgg19-dcbb9e9d.pth .* at .*torch-home.* or pass --vgg-weights"
    ):
        train(options(photos, tmp_path / "g", stage="gan", init=str(stage1), steps=1, patch=16, scales=(2,)))
    with pytest.raises(PcarnError, match="raise --patch to 16"):
        options(photos, tmp_path / "g", stage="gan", init=str(stage1), steps=1, patch=8)


def test_existing_run_and_changed_options_are_refused(photos, tmp_path):
    out = tmp_path / "run"
    train(options(photos, out, steps=2))
    with pytest.raises(PcarnError, match="--resume"):
        train(options(photos, out, steps=2))
    with pytest.raises(PcarnError, match="cannot resume: --batch"):
        train(options(photos, out, steps=4, batch=3, resume=True))
    with pytest.raises(PcarnError, match="cannot resume: --min-detail"):
        train(options(photos, out, steps=4, min_detail=3.0, resume=True))


def test_hr_max_side_must_leave_room_for_a_patch(photos, tmp_path):
    with pytest.raises(PcarnError, match="at least 32"):
        options(photos, tmp_path / "run", hr_max_side=20, scales=(2, 4))


@pytest.mark.slow
def test_torchrun_two_cpu_processes(photos, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    result = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "pcarn",
            "train",
            "--variant",
            "pcarn-test",
            "--data",
            str(photos / "train"),
            "--batch",
            "2",
            "--patch",
            "8",
            "--workers",
            "0",
            "--threads",
            "1",
            "--steps",
            "4",
            "--save-every",
            "2",
            "--quiet",
            "--out",
            str(out),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = read_metadata(out / "last.safetensors")
    assert metadata["training"]["world_size"] == 2 and metadata["training"]["steps"] == 4


def test_amp_auto_follows_the_hardware(monkeypatch):
    import torch

    from toolkit.training import trainer as training

    cpu = torch.device("cpu")
    monkeypatch.setattr(training, "native_bf16_cpu", lambda: True)
    assert training.resolve_amp("auto", cpu) == "bf16"
    monkeypatch.setattr(training, "native_bf16_cpu", lambda: False)
    assert training.resolve_amp("auto", cpu) == "none"
    assert training.resolve_amp("auto", torch.device("cuda")) == "bf16"
    assert training.resolve_amp("fp16", cpu) == "fp16"
