"""The card of a photo-realistic (GAN-stage) checkpoint: LPIPS next to PSNR-Y, beside the authors'
models and our stage-1 ones, a perception-distortion plot and side-by-side crops.

Section 5 judges the GAN models by LPIPS (AlexNet-lin v0.1); PSNR is expected to fall. The bar
(``toolkit/targets.json``): LPIPS a share of the authors' GAN improvement better than our stage-1
model of the same variant, at every scale, with PSNR-Y within a slack of the authors' PCARN-M.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import numpy as np

from models import PCARN
from toolkit.cards.shipping import lineage_lines, provenance_line
from toolkit.data import bicubic_downscale, bicubic_upscale, mod_crop
from toolkit.errors import PcarnError
from toolkit.inference import upscale_rgb
from toolkit.metrics.evaluate import evaluate
from toolkit.targets import targets as project_targets
from toolkit.weights.blend import blend_networks
from toolkit.weights.checkpoint import save_checkpoint
from toolkit.weights.loading import load_any
from toolkit.weights.registry import MODELS, SHIPPED_DIR, shipped_path

AUTHORS_GAN, AUTHORS_L1 = "authors-pcarn-m-gan", "authors-pcarn-m-l1"
# Models a GAN card compares with: (registry name, label, shipped by us?).
COMPARISONS = tuple(
    (MODELS[n].name, MODELS[n].label, MODELS[n].source == "shipped")
    for n in (AUTHORS_GAN, AUTHORS_L1, "pcarn-m", "pcarn", "pcarn-m-gan", "pcarn-gan")
)
CROP_SIZE = 96  # HR pixels; shown at the model's largest scale
CROP_PHOTOS = ("astronaut", "chelsea", "coffee")


def compared_models(name: str, images: dict, scales: tuple[int, ...]) -> dict[str, dict]:
    """Metrics of every comparison model available here (skipping ``name`` and unshipped ones)."""
    results = {}
    for other, label, ours in COMPARISONS:
        if other == name or (ours and not shipped_path(other).is_file()):
            continue
        try:
            model = load_any(other, quiet=True).model
        except PcarnError as exc:
            print(f"note: {other} unavailable for comparison ({exc})", file=sys.stderr)
            continue
        results[other] = {"label": label, "metrics": evaluate(model, images, scales), "model": model}
    return results


def targets(name: str, head: str, compared: dict) -> dict:
    """This issue's bar for one scale, from the models that are present."""
    out = {}
    bar = project_targets("gan_card")
    stage1 = name.removesuffix("-gan")
    # The bars of the issue that introduced this stage: GAN PCARN-M against the authors' GAN step;
    # GAN PCARN against GAN PCARN-M.
    if name == "pcarn-m-gan" and {AUTHORS_GAN, AUTHORS_L1, stage1} <= set(compared):
        bought = (
            compared[AUTHORS_L1]["metrics"][head]["lpips"] - compared[AUTHORS_GAN]["metrics"][head]["lpips"]
        )
        out["lpips_max"] = compared[stage1]["metrics"][head]["lpips"] - bar["lpips_fraction"] * bought
    if AUTHORS_GAN in compared:
        out["psnr_y_min"] = compared[AUTHORS_GAN]["metrics"][head]["psnr_y"] - bar["psnr_slack_db"]
    if name == "pcarn-gan" and "pcarn-m-gan" in compared:
        out["lpips_max_vs_pcarn_m_gan"] = compared["pcarn-m-gan"]["metrics"][head]["lpips"]
    return out


def publish_gan(
    model: PCARN,
    name: str,
    images: dict,
    ours: dict,
    training: dict,
    *,
    source: dict | None,
    made: dict | None = None,
    held_out: dict | None = None,
) -> dict:
    """Store the checkpoint and write ``models/{name}.md`` with its plot and crops; returns metrics.
    ``held_out`` (the held-out training photos, when present here) adds a second quality table."""
    scales = tuple(model.config.scales)
    compared = compared_models(name, images, scales)
    metrics = {}
    for head, values in ours.items():
        bar = targets(name, head, compared)
        metrics[head] = {
            **values,
            "targets": bar,
            "compared": {
                k: {m: c["metrics"][head][m] for m in ("psnr_y", "ssim_y", "lpips")}
                for k, c in compared.items()
            },
        }
    stored = save_checkpoint(
        model,
        SHIPPED_DIR / f"{name}.safetensors",
        training=training,
        metrics=metrics,
        source=source,
        made=made,
    )
    stage1 = compared.get(name.removesuffix("-gan"))
    curve = blend_curve(stage1["model"], model, images, scales) if stage1 else {}
    plot_path = SHIPPED_DIR / f"{name}-perception-distortion.png"
    plot_perception_distortion(name, ours, compared, plot_path, curve)
    crops = {p: images[p] for p in CROP_PHOTOS if p in images}
    crops_notes = []
    for scale in sorted({min(scales), max(scales)}) if crops else ():
        crops_path = SHIPPED_DIR / f"{name}-crops-x{scale}.png"
        side_by_side(name, model, crops, compared, crops_path, scale)
        crops_notes.append((crops_path.name, scale))
    held = None
    if held_out:
        held = {
            "ours": evaluate(model, held_out, scales),
            # the comparison models already loaded for the scikit-image table, not loaded again
            "compared": {
                k: {**c, "metrics": evaluate(c["model"], held_out, scales)} for k, c in compared.items()
            },
        }
        held["photos"] = sorted(held_out)
    sections = CardSections(plot_path.name, crops_notes, curve, held)
    card = render_gan_card(name, stored, metrics, compared, sections)
    (SHIPPED_DIR / f"{name}.md").write_text(card)
    return metrics


BLEND_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def blend_curve(stage1: PCARN, gan: PCARN, images: dict, scales: tuple[int, ...]) -> dict[float, dict]:
    """Metrics of ``pcarn blend`` from our stage-1 model to the GAN model: the knob an app turns."""
    if stage1.config != gan.config:
        return {}
    return {a: evaluate(blend_networks(stage1, gan, a), images, scales) for a in BLEND_ALPHAS}


def _met(metrics: dict) -> dict[str, bool]:
    checks: dict[str, bool] = {}
    for head, m in metrics.items():
        t = m["targets"]
        if "lpips_max" in t:
            checks[f"{head} LPIPS <= {t['lpips_max']:.3f}"] = m["lpips"] <= t["lpips_max"]
        if "psnr_y_min" in t:
            checks[f"{head} PSNR-Y >= {t['psnr_y_min']:.2f} dB"] = m["psnr_y"] >= t["psnr_y_min"]
        if "lpips_max_vs_pcarn_m_gan" in t:
            checks[f"{head} LPIPS <= pcarn-m-gan's {t['lpips_max_vs_pcarn_m_gan']:.3f}"] = (
                m["lpips"] <= t["lpips_max_vs_pcarn_m_gan"]
            )
    versus = [m for m in metrics.values() if "lpips_max_vs_pcarn_m_gan" in m["targets"]]
    if versus and len(versus) == len(metrics):
        ours = sum(m["lpips"] for m in versus) / len(versus)
        theirs = sum(m["targets"]["lpips_max_vs_pcarn_m_gan"] for m in versus) / len(versus)
        checks[f"mean LPIPS {ours:.4f} <= pcarn-m-gan's {theirs:.4f}"] = ours <= theirs
    return checks


@dataclass
class CardSections:
    """What a GAN card shows beyond its quality table: the plot, the crops (file, scale), the blend
    curve (alpha -> metrics) and the held-out photos' measurements (None: not present here)."""

    plot_file: str
    crops: list[tuple[str, int]] = field(default_factory=list)
    curve: dict = field(default_factory=dict)
    held_out: dict | None = None


def render_gan_card(name: str, metadata: dict, metrics: dict, compared: dict, sections: CardSections) -> str:
    """The card, section by section, from what ``publish_gan`` measured."""
    training = metadata.get("training") or {}
    heads = list(metrics)
    lines = [
        *_made_lines(name, metadata, training),
        *_quality_lines(name, training, metrics, compared, heads),
        *_held_out_lines(name, sections.held_out, heads, saw_held_out(training)),
        "",
        "## Perception-distortion",
        "",
        f"![PSNR-Y vs LPIPS]({sections.plot_file})",
        "",
        *_curve_lines(name, sections.curve, heads),
        *(line for crop in sections.crops for line in _crops_lines(crop)),
        *_history_lines(training.get("validation_history") or [], heads),
    ]
    raw = {h: {k: v for k, v in m.items() if k != "compared"} for h, m in metrics.items()}
    lines += ["", "## Raw metrics", "", "```json", json.dumps(raw, indent=2), "```", ""]
    return "\n".join(lines)


def _made_lines(name: str, metadata: dict, training: dict) -> list[str]:
    options = training.get("options", {})
    substitute = (
        " — **a substitute for the paper's VGG19 conv5_4**, whose weights cannot be downloaded on the "
        "machine that trained this"
        if options.get("perceptual") == "vgg16"
        else ""
    )
    return [
        f"# {name} — photo-realistic (GAN stage), trained by pcarn-toolkit",
        "",
        f"Variant `{metadata['variant']}`, {metadata['params']:,} parameters, heads "
        f"{', '.join('x' + str(s) for s in metadata['io']['scales'])}; input RGB in [0, 1], NCHW. "
        "Fine-tuned from our stage-1 model with the multi-scale discriminator and the perceptual loss "
        "(section 3.5): judge it by LPIPS, not PSNR.",
        "",
        "## How it was made",
        "",
        f"- Command: `{training.get('command', '?')}`",
        f"- Data: `{training.get('data', '?')}` (the Debian wallpaper photos of "
        "`shared/data/debian-photos.sh`; none of the validation photos)",
        f"- Perceptual network: {training.get('perceptual', '?')}{substitute}",
        f"- Loss (Eq. 7): {options.get('adv_weight', '?')} x multi-scale adversarial + "
        f"{options.get('vgg_weight', '?')} x perceptual MSE (the paper's weights)",
        f"- {training.get('steps', '?')} steps, batch {options.get('batch', '?')}, LR patch "
        f"{options.get('patch', '?')}, recipe `{options.get('recipe', '?')}` lr "
        f"{options.get('lr') or 'default'}, "
        f"device {training.get('device', '?')} (paper: 2e5 steps, batch 64, patch 48, lr 1e-4 on a GPU; "
        "batch, patch and steps cut to fit a 2-core CPU)",
        f"- Training wall time: {training.get('wall_seconds', 0) / 3600:.2f} h of optimizer steps; best "
        "checkpoint chosen by mean validation LPIPS",
        *lineage_lines(training),
        provenance_line(metadata),
        "",
    ]


def _quality_lines(name: str, training: dict, metrics: dict, compared: dict, heads: list[str]) -> list[str]:
    def row(label: str, values: dict) -> str:
        cells = [f"{v['psnr_y']:.2f} / {v['ssim_y']:.4f} / {v['lpips']:.3f}" for v in values.values()]
        return f"| {label} | " + " | ".join(cells) + " |"

    bicubic = {
        h: {"psnr_y": m["bicubic_psnr_y"], "ssim_y": m["bicubic_ssim_y"], "lpips": m["bicubic_lpips"]}
        for h, m in metrics.items()
    }
    lines = [
        "## Quality",
        "",
        "PSNR-Y / SSIM-Y (BT.601 studio range, border = scale) and LPIPS (AlexNet-lin v0.1, same crop; "
        "lower is better), mean over scikit-image's "
        f"{', '.join(training.get('validation', {}).get('images', []))}; "
        f"LR by antialiased bicubic downscaling. Reproduce: `pcarn eval --model {name}` (and "
        "`--model NAME` for each row).",
        "",
        "| model | " + " | ".join(f"{h} PSNR-Y / SSIM-Y / LPIPS" for h in heads) + " |",
        "|---" * (len(heads) + 1) + "|",
        row(f"**{name} (this)**", {h: metrics[h] for h in heads}),
        *(row(c["label"], {h: c["metrics"][h] for h in heads}) for c in compared.values()),
        row("bicubic", bicubic),
    ]
    checks = _met(metrics)
    if checks:
        bar = project_targets("gan_card")
        lines += [
            "",
            f"Bar (pcarn-m-gan: LPIPS at least {bar['lpips_fraction']:.0%} of the authors' GAN gain better "
            "than our stage-1 pcarn-m; pcarn-gan: LPIPS at least as good as pcarn-m-gan; both: PSNR-Y "
            f"within {bar['psnr_slack_db']} dB of the authors' PCARN-M or above; toolkit/targets.json): "
            + ", ".join(f"{k}: {'met' if v else '**not met**'}" for k, v in checks.items())
            + f". Overall: **{'met' if all(checks.values()) else 'not met'}**.",
        ]
    return lines


def saw_held_out(training: dict) -> bool:
    """Whether a run in this checkpoint's lineage trained on the held-out photos: every run since the
    list exists validates on them (``--val held-out:DIR``) and excludes them from its data."""
    while training:
        command = training.get("command") or ""
        if "held-out:" not in command:
            return True
        training = training.get("init_training") or {}
    return False


def _held_out_lines(name: str, held: dict | None, heads: list[str], seen: bool) -> list[str]:
    if not held:
        return [
            "",
            "Held-out photos (`toolkit.data.HELD_OUT`, kept out of training): not present where this card "
            f"was made; `pcarn eval --model {name} --data held-out:PHOTOS/` measures them.",
        ]
    rows = {
        f"**{name} (this)**": held["ours"],
        **{c["label"]: c["metrics"] for c in held["compared"].values()},
    }
    return [
        "",
        f"On the held-out photos ({', '.join(held['photos'])}: training photos kept out of training, each "
        f"shrunk to a long side of 1024 and centre-cropped to 512; `pcarn eval --model {name} --data "
        "held-out:PHOTOS/`):",
        *(
            [
                "",
                "**Caveat:** a run in this checkpoint's lineage predates the held-out list and trained on "
                "these photos (as did our other checkpoints so far), so our rows here are optimistic; the "
                "authors' models never saw them.",
            ]
            if seen
            else []
        ),
        "",
        "| model | " + " | ".join(f"{h} PSNR-Y / SSIM-Y / LPIPS" for h in heads) + " |",
        "|---" * (len(heads) + 1) + "|",
        *(
            f"| {label} | "
            + " | ".join(f"{m[h]['psnr_y']:.2f} / {m[h]['ssim_y']:.4f} / {m[h]['lpips']:.3f}" for h in heads)
            + " |"
            for label, m in rows.items()
        ),
    ]


def _curve_lines(name: str, curve: dict, heads: list[str]) -> list[str]:
    if not curve:
        return []
    stage1 = name.removesuffix("-gan")
    return [
        f"The dashed line is `pcarn blend {stage1} {name} --alpha A` for A = "
        f"{', '.join(f'{a:g}' for a in curve)} (0: our stage 1, 1: this model), PSNR-Y / LPIPS:",
        "",
        "| alpha | " + " | ".join(heads) + " |",
        "|---" * (len(heads) + 1) + "|",
        *(
            f"| {alpha:g} | "
            + " | ".join(f"{m[h]['psnr_y']:.2f} / {m[h]['lpips']:.3f}" for h in heads)
            + " |"
            for alpha, m in curve.items()
        ),
        "",
    ]


def _crops_lines(crops: tuple[str, int]) -> list[str]:
    crops_file, crops_scale = crops
    return [
        f"## Side by side (x{crops_scale})",
        "",
        "The most detailed 96x96 HR window of each photo: bicubic | our stage 1 | the 0.5 blend | this "
        "model | the authors' PCARN-M (GAN) | HR.",
        "",
        f"![crops]({crops_file})",
        "",
    ]


def _history_lines(history: list[dict], heads: list[str]) -> list[str]:
    if not history:
        return []
    lines = [
        "## Validation during training",
        "",
        "| step | " + " | ".join(f"{h} PSNR-Y / LPIPS" for h in heads) + " |",
        "|---" * (len(heads) + 1) + "|",
    ]
    for record in history:
        cells = [
            f"{record['metrics'][h]['psnr_y']:.2f} / {record['metrics'][h].get('lpips', float('nan')):.3f}"
            for h in heads
        ]
        lines.append(f"| {record['step']} | " + " | ".join(cells) + " |")
    return [*lines, "", more_training(history, heads)]


def more_training(history: list[dict], heads: list[str]) -> str:
    """What the LPIPS curve says about training longer."""
    with_lpips = [r for r in history if all("lpips" in r["metrics"][h] for h in heads)]
    if len(with_lpips) < 2:
        return "Too few validations to read a trend."
    half = with_lpips[len(with_lpips) // 2 :]
    first, last = half[0], half[-1]
    steps = max(1, last["step"] - first["step"])
    slopes = ", ".join(
        f"{h} {1000 * (last['metrics'][h]['lpips'] - first['metrics'][h]['lpips']) / steps:+.4f}"
        for h in heads
    )
    return (
        f"Over the second half of the run (steps {first['step']}-{last['step']}) LPIPS moved by {slopes} per "
        "1000 steps (negative = better). The authors fine-tuned for 2e5 steps at batch 64; this run is a "
        "small fraction of that, so continuing with `--init` from these weights is the way to get closer."
    )


def plot_perception_distortion(
    name: str, ours: dict, compared: dict, path, curve: dict | None = None
) -> None:
    """PSNR-Y against LPIPS, one point per model and scale (the idea of the paper's Fig. 8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {f"{name} (this)": ours, **{c["label"]: c["metrics"] for c in compared.values()}}
    series["bicubic"] = {
        h: {"psnr_y": m["bicubic_psnr_y"], "lpips": m["bicubic_lpips"]} for h, m in ours.items()
    }
    markers = {"x2": "o", "x3": "s", "x4": "^"}
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, (label, metrics) in enumerate(series.items()):
        colour = "black" if label == "bicubic" else f"C{i}"
        xs = [metrics[h]["lpips"] for h in metrics]
        ys = [metrics[h]["psnr_y"] for h in metrics]
        ax.plot(xs, ys, color=colour, lw=0.8, alpha=0.5)
        for head, x, y in zip(metrics, xs, ys, strict=True):
            ax.scatter(
                x,
                y,
                color=colour,
                marker=markers.get(head, "o"),
                s=70 if "(this)" in label else 40,
                edgecolors="black" if "(this)" in label else "none",
                zorder=3,
            )
        ax.plot([], [], color=colour, label=label)
    for head, marker in markers.items():
        if curve:  # the blend from our stage 1 (alpha 0) to this model (alpha 1), per scale
            xs = [m[head]["lpips"] for m in curve.values() if head in m]
            ys = [m[head]["psnr_y"] for m in curve.values() if head in m]
            ax.plot(xs, ys, color="C0", ls="--", lw=1.2, marker=marker, ms=4, alpha=0.8)
        ax.scatter([], [], color="grey", marker=marker, label=head)
    if curve:
        ax.plot([], [], color="C0", ls="--", label=f"pcarn blend, alpha {', '.join(f'{a:g}' for a in curve)}")
    ax.set_xlabel("LPIPS (AlexNet-lin v0.1) - lower is more photo-realistic")
    ax.set_ylabel("PSNR-Y (dB) - higher is less distorted")
    ax.set_title("Perception-distortion on the scikit-image photos")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def most_detailed_window(hr: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` window with the largest mean gradient (on a coarse grid)."""
    gray = hr.astype(np.float32).mean(axis=2)
    grad = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    best, corner = -1.0, (0, 0)
    step = size // 4
    for y in range(0, grad.shape[0] - size, step):
        for x in range(0, grad.shape[1] - size, step):
            score = float(grad[y : y + size, x : x + size].mean())
            if score > best:
                best, corner = score, (y, x)
    return corner


def side_by_side(name: str, model: PCARN, photos: dict, compared: dict, path, scale: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stage1 = compared.get(name.removesuffix("-gan"))
    authors = compared.get(AUTHORS_GAN)
    same_network = stage1 is not None and stage1["model"].config == model.config
    columns = [
        ("bicubic", None),
        ("ours stage 1", stage1["model"] if stage1 else None),
        ("blend 0.5", blend_networks(stage1["model"], model, 0.5) if same_network else None),
        (f"{name}", model),
        ("authors' PCARN-M", authors["model"] if authors else None),
        ("HR", None),
    ]
    columns = [c for c in columns if c[1] is not None or c[0] in ("bicubic", "HR")]
    s = scale
    fig, axes = plt.subplots(len(photos), len(columns), figsize=(2.4 * len(columns), 2.5 * len(photos)))
    axes = np.atleast_2d(axes)
    for r, (photo, hr_full) in enumerate(photos.items()):
        hr = mod_crop(hr_full, s)
        lr = bicubic_downscale(hr, s)
        y, x = most_detailed_window(hr, CROP_SIZE)
        for c, (label, net) in enumerate(columns):
            if label == "HR":
                image = hr
            elif label == "bicubic":
                image = bicubic_upscale(lr, s)
            else:
                image = upscale_rgb(net, lr.astype(np.float32) / 255.0, s)
            ax = axes[r, c]
            ax.imshow(image[y : y + CROP_SIZE, x : x + CROP_SIZE], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=9)
            if c == 0:
                ax.set_ylabel(photo, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
