"""The two-stage trainer of section 3.5: L1 pre-training, then the multi-scale GAN fine-tune.

One loop serves both stages, CPU and CUDA, one process or many under torchrun. Everything a resumed
run needs (weights, optimizers, scheduler, step, best score, RNG) is written atomically to
``state.pt``; batches depend only on ``(seed, step)``, so a run resumed after ``kill -9`` continues
exactly where its last save left it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from models import PCARN, PRESETS, MultiScaleDiscriminator, build_model, variant_of
from toolkit.atomic import atomic_path, removed_on_failure
from toolkit.data import PatchCache, StepBatches, discover, make_loader
from toolkit.errors import PcarnError
from toolkit.metrics.evaluate import evaluate, validation_images
from toolkit.training import distributed
from toolkit.training.perceptual import PERCEPTUAL_NETWORKS, VGGFeatures, load_perceptual
from toolkit.training.recipes import RECIPES, make_scheduler
from toolkit.training.run_log import RunLog, plot_curves
from toolkit.training.steps import CLIP, GanNets, adam, gan_step, l1_step
from toolkit.weights.checkpoint import save_checkpoint, training_lineage
from toolkit.weights.loading import load_any

AMP_CHOICES = ("auto", "none", "bf16", "fp16")

# Options that must not change when a run is resumed.
FIXED_ON_RESUME = (
    "variant",
    "stage",
    "scales",
    "batch",
    "patch",
    "seed",
    "recipe",
    "lr",
    "hr_max_side",
    "min_detail",
    "perceptual",
)


@dataclass
class TrainOptions:
    data: str
    out: str
    variant: str = "pcarn-m"
    stage: str = "l1"
    steps: int = 10_000
    batch: int = 16
    patch: int = 48
    scales: tuple[int, ...] = (2, 3, 4)
    hr_max_side: int | None = None  # shrink larger HR photos once, before caching
    min_detail: float = 0.0  # redraw flatter LR crops (mean abs neighbour difference, 8-bit levels)
    val: str | None = None
    init: str | None = None
    resume: bool = False
    recipe: str = "fast"
    lr: float | None = None
    lr_step: int | None = None
    warmup: int | None = None
    clip: float = CLIP
    val_every: int = 500
    save_every: int = 100
    log_every: int = 10
    workers: int = 2
    device: str = "auto"
    amp: str = "auto"
    seed: int = 0
    threads: int | None = None
    vgg_weights: str | None = None
    perceptual: str = (
        "vgg19"  # vgg19 (the paper's) or vgg16 (offline substitute, see toolkit.training.perceptual)
    )
    adv_weight: float = 5e-3  # section 3.5 / Eq. 7: GAN terms vs VGG loss
    vgg_weight: float = 1.0
    progress: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        if self.variant not in PRESETS:
            raise PcarnError(f"unknown variant {self.variant!r}; choose from {', '.join(PRESETS)}")
        if self.stage not in ("l1", "gan"):
            raise PcarnError(f"--stage must be l1 or gan, got {self.stage!r}")
        if self.recipe not in RECIPES:
            raise PcarnError(f"unknown recipe {self.recipe!r}; choose from {', '.join(RECIPES)}")
        if self.perceptual not in PERCEPTUAL_NETWORKS:
            raise PcarnError(
                f"unknown --perceptual {self.perceptual!r}; choose from {', '.join(PERCEPTUAL_NETWORKS)}"
            )
        if self.amp not in AMP_CHOICES:
            raise PcarnError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {self.amp!r}")
        if min(self.steps, self.batch, self.patch) < 1:
            raise PcarnError("--steps, --batch and --patch must be positive")
        for flag in ("val_every", "save_every", "log_every", "threads", "lr_step"):
            value = getattr(self, flag)
            if value is not None and value < 1:
                raise PcarnError(f"--{flag.replace('_', '-')} must be 1 or more, got {value}")
        for flag in ("workers", "warmup", "min_detail"):
            value = getattr(self, flag)
            if value is not None and value < 0:
                raise PcarnError(f"--{flag.replace('_', '-')} must be 0 or more, got {value}")
        if self.lr is not None and not self.lr > 0:
            raise PcarnError(f"--lr must be positive, got {self.lr}")
        if self.stage == "gan" and not self.init:
            raise PcarnError("stage gan fine-tunes a stage-1 model: pass --init CHECKPOINT")
        if self.hr_max_side is not None and self.hr_max_side < self.patch * max(self.scales):
            raise PcarnError(
                f"--hr-max-side {self.hr_max_side} leaves no room for a {self.patch}px LR patch at "
                f"x{max(self.scales)}: use at least {self.patch * max(self.scales)}"
            )
        self.scales = tuple(int(s) for s in self.scales)
        if self.stage == "gan" and self.patch * min(self.scales) < 32:
            # The x4-pooled discriminator halves its input three times with 4x4 convs.
            raise PcarnError(
                f"stage gan needs HR patches of at least 32 px: raise --patch to {-(-32 // min(self.scales))}"
            )
        if any(s not in (2, 3, 4) for s in self.scales):
            raise PcarnError(f"--scales must come from 2,3,4, got {self.scales}")

    def recipe_config(self):
        base = RECIPES[self.recipe]
        changes = {
            k: v for k, v in (("lr", self.lr), ("lr_step", self.lr_step), ("warmup", self.warmup)) if v
        }
        return dataclasses.replace(base, **changes)


def _device(option: str) -> torch.device:
    if option == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if option.startswith("cuda") and not torch.cuda.is_available():
        raise PcarnError("--device cuda requested but no CUDA device is available")
    try:
        return torch.device(option)
    except RuntimeError:
        raise PcarnError(f"--device must be auto, cpu, cuda or cuda:N, got {option!r}") from None


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AMX-BF16 or AVX512-BF16), read from the kernel's CPU
    flags; elsewhere bf16 autocast is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: fp32, the safe choice
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_amp(option: str, device: torch.device) -> str:
    """``auto``: bf16 on CUDA and on CPUs with native bf16, none elsewhere; other values as given."""
    if option != "auto":
        return option
    if device.type == "cuda" or native_bf16_cpu():
        return "bf16"
    return "none"


def autocast_for(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast for a resolved ``--amp`` (none, bf16, fp16) on ``device``."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _initial_model(opts: TrainOptions) -> tuple[PCARN, dict | None]:
    config = PRESETS[opts.variant].replace(scales=opts.scales)
    if not opts.init:
        if opts.stage == "gan":
            raise PcarnError("stage gan fine-tunes a stage-1 model: pass --init CHECKPOINT")
        return PCARN(config), None
    loaded = load_any(opts.init, quiet=True)
    source = loaded.model
    if variant_of(source.config) != opts.variant:
        raise PcarnError(f"--init {opts.init} is {variant_of(source.config)}, not {opts.variant}")
    model = PCARN(config)
    state = {k: v for k, v in source.state_dict().items() if k in model.state_dict()}
    missing = set(model.state_dict()) - set(state)
    if missing:
        raise PcarnError(f"--init {opts.init} lacks weights for {sorted(missing)[0]} (heads {opts.scales}?)")
    model.load_state_dict(state)
    record = {"init": str(opts.init), "init_path": loaded.path, "init_sha256": loaded.sha256}
    earlier = loaded.metadata.get("training") or {}
    if earlier:  # keep the lineage, so a card can state the total training behind the weights
        record["init_training"] = training_lineage(earlier)
    return model, record


class Trainer:
    def __init__(self, opts: TrainOptions, *, vgg: VGGFeatures | None = None) -> None:
        self.opts = opts
        self.out = Path(opts.out)
        if self.out.exists() and not self.out.is_dir():
            raise PcarnError(f"--out {self.out} is a file; give a run folder")
        if opts.resume and not (self.out / "state.pt").is_file():
            raise PcarnError(
                f"nothing to resume in {self.out}: it holds no state.pt; leave out --resume to start a run"
            )
        # A run refused while it is set up leaves no folder, cache or options behind.
        with removed_on_failure(self.out):
            self._setup(opts, vgg)

    def _setup(self, opts: TrainOptions, vgg: VGGFeatures | None) -> None:
        self.device = _device(opts.device)
        self.dist = distributed.setup(self.device.type)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        if opts.threads:
            torch.set_num_threads(opts.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state_path = self.out / "state.pt"
        if self.state_path.exists() and not opts.resume:
            raise PcarnError(f"{self.out} already holds a run; pass --resume to continue it or pick --out")
        torch.manual_seed(opts.seed)
        # Check everything that can fail before any long work starts.
        self.vgg = None
        if opts.stage == "gan":
            self.vgg = (vgg or load_perceptual(opts.perceptual, opts.vgg_weights)).to(self.device)
        self.val_images = validation_images(opts.val) if opts.val and self.dist.main else None
        self.model, self.init_record = _initial_model(opts)  # a bad --init fails before the cache
        pairs = discover(opts.data, opts.scales)
        # Rank 0 decodes the cache; the other ranks wait for it, then map the same files.
        if not self.dist.main:
            distributed.barrier(self.dist)
        cache = PatchCache(
            pairs,
            opts.scales,
            opts.patch,
            self.out / "cache",
            progress=opts.progress and self.dist.main,
            hr_max_side=opts.hr_max_side,
            min_detail=opts.min_detail,
        )
        if self.dist.main:
            distributed.barrier(self.dist)
        self.batches = StepBatches(cache, opts.batch, opts.seed, rank=self.dist.rank)

        self.channels_last = self.device.type == "cpu"
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model.to(self.device, memory_format=fmt)
        self.net = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # Each step trains one head, so the other heads' weights get no gradient that step.
            # The only generator buffer is the constant mean shift: nothing to broadcast.
            self.net = DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=True, broadcast_buffers=False
            )
        self.optimizer = adam(self.model.parameters(), opts.recipe_config().lr)
        self.scheduler = make_scheduler(self.optimizer, opts.recipe_config(), opts.steps)
        self.amp = resolve_amp(opts.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.disc = self.disc_net = self.disc_optimizer = None
        if opts.stage == "gan":
            self.disc = MultiScaleDiscriminator().to(self.device, memory_format=fmt)
            if self.vgg is not None:
                self.vgg.to(memory_format=fmt)
            self.disc_net = self.disc
            if self.dist.enabled:
                ids = [self.device.index] if self.device.type == "cuda" else None
                self.disc_net = DistributedDataParallel(self.disc, device_ids=ids)
            self.disc_optimizer = adam(self.disc.parameters(), opts.recipe_config().lr)
        self.step = 0
        self.best: float | None = None
        self.wall = 0.0
        if opts.resume and self.state_path.exists():
            self._load_state()
        self.log = RunLog(self.out / "log.jsonl", truncate_after_step=self.step) if self.dist.main else None
        if self.dist.main and self.step == 0:
            (self.out / "options.json").write_text(json.dumps(dataclasses.asdict(opts), indent=2))

    # ----- state -------------------------------------------------------------------------------
    def _options_record(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self.opts).items()}

    def _save_state(self) -> None:
        if not self.dist.main:
            return
        state = {
            "step": self.step,
            "best": self.best,
            "wall": self.wall,
            "options": self._options_record(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if self.disc is not None:
            state["disc"] = self.disc.state_dict()
            state["disc_optimizer"] = self.disc_optimizer.state_dict()
        with atomic_path(self.state_path) as tmp:
            torch.save(state, tmp)

    def _load_state(self) -> None:
        state = torch.load(self.state_path, map_location=self.device, weights_only=True)
        stored = state["options"]
        defaults = TrainOptions.__dataclass_fields__
        for key in FIXED_ON_RESUME:
            ours = self._options_record()[key]
            theirs = stored.get(key, defaults[key].default)  # runs saved before the option existed
            if theirs != ours:
                flag = key.replace("_", "-")
                raise PcarnError(f"cannot resume: --{flag} was {theirs!r} in this run, now {ours!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.disc is not None:
            self.disc.load_state_dict(state["disc"])
            self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        self.step, self.best, self.wall = state["step"], state["best"], state.get("wall", 0.0)

    def _training_record(self) -> dict:
        return {
            "stage": self.opts.stage,
            "steps": self.step,
            "wall_seconds": round(self.wall, 1),
            "data": str(self.opts.data),
            "options": self._options_record(),
            "command": self.opts.command,
            "world_size": self.dist.world,
            "device": str(self.device),
            **(self.init_record or {}),
            **({"perceptual": PERCEPTUAL_NETWORKS[self.opts.perceptual]} if self.opts.stage == "gan" else {}),
        }

    def _save_model(self, name: str, metrics: dict | None) -> Path:
        path = self.out / name
        save_checkpoint(self.model, path, training=self._training_record(), metrics=metrics)
        return path

    # ----- steps ---------------------------------------------------------------------------------
    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t

    def _l1_step(self, lr: torch.Tensor, hr: torch.Tensor, scale: int) -> dict:
        return l1_step(
            self.net,
            self.model,
            self.optimizer,
            self.scaler,
            lr,
            hr,
            scale,
            clip=self.opts.clip,
            autocast=self._autocast(),
        )

    def _gan_step(self, lr: torch.Tensor, hr: torch.Tensor, scale: int) -> dict:
        nets = GanNets(
            self.net, self.model, self.disc_net, self.disc, self.vgg, self.optimizer, self.disc_optimizer
        )
        opts = self.opts
        return gan_step(
            nets,
            lr,
            hr,
            scale,
            autocast=self._autocast,
            adv_weight=opts.adv_weight,
            vgg_weight=opts.vgg_weight,
            clip=opts.clip,
        )

    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast_for(self.device, self.amp)

    def _validate(self) -> None:
        if not self.dist.main or self.val_images is None:
            return
        gan = self.opts.stage == "gan"
        metrics = evaluate(self.model, self.val_images, self.opts.scales, lpips=gan)
        mean_gain = sum(m["gain_db"] for m in metrics.values()) / len(metrics)
        record = {"kind": "val", "step": self.step, "metrics": metrics, "mean_gain_db": mean_gain}
        # Stage 1 keeps the best PSNR; the GAN stage the best LPIPS (section 5 judges it so).
        score = mean_gain
        if gan:
            record["mean_lpips"] = sum(m["lpips"] for m in metrics.values()) / len(metrics)
            score = -record["mean_lpips"]
        improved = self.best is None or score > self.best
        self.log.write(record)
        if improved:
            self.best = score
            self._save_model("best.safetensors", metrics)
        summary = "  ".join(
            f"{k} {m['psnr_y']:.2f} dB ({m['gain_db']:+.2f})" + (f" LPIPS {m['lpips']:.3f}" if gan else "")
            for k, m in metrics.items()
        )
        tqdm.write(f"step {self.step}: PSNR-Y {summary}{'  [best]' if improved else ''}", file=sys.stderr)

    def run(self) -> Path:
        opts = self.opts
        if self.step >= opts.steps:
            return self.out / "last.safetensors"
        loader = make_loader(self.batches, self.step, opts.steps, opts.workers)
        step_fn = self._gan_step if opts.stage == "gan" else self._l1_step
        self.model.train()
        bar = tqdm(
            total=opts.steps,
            initial=self.step,
            disable=not (opts.progress and self.dist.main),
            desc=f"{opts.variant} {opts.stage}",
            unit="step",
            dynamic_ncols=True,
        )
        window_start, window_steps = time.perf_counter(), 0
        for lr, hr, scale in loader:
            started = time.perf_counter()
            stats = step_fn(self._to_device(lr), self._to_device(hr), int(scale))
            self.scheduler.step()
            self.step += 1
            self.wall += time.perf_counter() - started
            window_steps += 1
            if self.dist.main:
                bar.update(1)
                if self.step % opts.log_every == 0 or self.step == opts.steps:
                    rate = window_steps / max(1e-9, time.perf_counter() - window_start)
                    window_start, window_steps = time.perf_counter(), 0
                    lr_now = self.optimizer.param_groups[0]["lr"]
                    self.log.write(
                        {
                            "kind": "train",
                            "step": self.step,
                            "scale": int(scale),
                            "lr": lr_now,
                            "steps_per_s": rate,
                            **stats,
                        }
                    )
                    bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{lr_now:.2e}", it_s=f"{rate:.2f}")
            if opts.val and (self.step % opts.val_every == 0 or self.step == opts.steps):
                self._validate()
            if self.step % opts.save_every == 0 or self.step == opts.steps:
                self._save_state()
                if self.dist.main:
                    self._save_model("last.safetensors", None)
                    plot_curves(self.log.records(), self.out / "curves.png")
            if self.step % opts.save_every == 0:
                distributed.barrier(self.dist)
        bar.close()
        distributed.teardown(self.dist)
        return self.out / "last.safetensors"


def train(opts: TrainOptions, *, vgg: VGGFeatures | None = None) -> Path:
    """Run (or resume) a training run; returns the path of its last checkpoint."""
    return Trainer(opts, vgg=vgg).run()


__all__ = ["TrainOptions", "Trainer", "train", "build_model"]
