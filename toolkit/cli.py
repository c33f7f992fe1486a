"""``pcarn`` command line. Heavy packages (export, benchmarks) are imported inside their commands."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from toolkit.cli_args import OneLineParser, counts_type, json_option, scale_type, scales_type
from toolkit.cli_train_args import add_train_arguments
from toolkit.errors import PcarnError, check_names
from toolkit.names import DEPLOY_DEFAULT, SHIPPED_NAMES


def _emit_json(document: dict, target: str | None) -> bool:
    """``--json PATH`` writes the document there; ``--json`` or ``--json -`` prints it as the only
    stdout. Returns True when stdout is taken (no human summary then)."""
    if target is None:
        return False
    text = json.dumps(document, indent=None if target == "-" else 2)
    if target == "-":
        print(text)
        return True
    from toolkit.atomic import atomic_path

    with atomic_path(target) as tmp:
        tmp.write_text(text + "\n")
    return False


def _cmd_info(args: argparse.Namespace) -> int:
    from models import PRESETS, build_model, count_parameters, head_parameters
    from models.multadds import multadds_720p

    if args.variant not in PRESETS:
        raise PcarnError(f"unknown variant {args.variant!r}; choose from {', '.join(PRESETS)}")
    model = build_model(args.variant)
    report = {
        "variant": args.variant,
        "params": count_parameters(model),
        "params_per_head": head_parameters(model),
        "multadds_720p": multadds_720p(model),
        "config": model.config.to_dict(),
        "convention": "MultAdds = conv weights x output pixels for a 1280x720 output; "
        "LR pixels = 1280*720/scale^2; tied units counted every time they run",
    }
    if _emit_json(report, args.json):
        return 0
    print(f"{args.variant}: {report['params']:,} parameters (all heads, tied weights once)")
    for head, n in report["params_per_head"].items():
        madds = report["multadds_720p"][head]
        print(f"  {head}: {n:>10,} parameters for this head alone   {madds / 1e9:7.1f} G MultAdds at 720p")
    return 0


def _cmd_upscale(args: argparse.Namespace) -> int:
    from toolkit.api import upscale_decoded
    from toolkit.atomic import check_output_folder
    from toolkit.images import output_format, read_image, write_image
    from toolkit.loading import check_variant, load_any

    output_format(args.output)  # fail on a bad destination before any heavy work
    check_output_folder(args.output)
    decoded = read_image(args.input)
    if _is_exported_file(args.model):
        model = _open_exported(args.model, (args.scale,))
        loaded = SimpleNamespace(
            model=model, variant=f"{model.fmt.name} {model.precision}", path=args.model, note=None
        )
    else:
        loaded = load_any(args.model, quiet=args.quiet)
        check_variant(loaded.model, args.variant, loaded.path)
        if args.scale not in loaded.scales:
            raise PcarnError(
                f"scale {args.scale} is not supported by this model; choose from {list(loaded.scales)}"
            )
    start = time.perf_counter()
    image = upscale_decoded(
        decoded, args.scale, loaded.model, tile=args.tile, overlap=args.tile_overlap, progress=not args.quiet
    )
    path = write_image(image, args.output)
    if not args.quiet:
        h, w = decoded.rgb.shape[:2]
        seconds = time.perf_counter() - start
        print(
            f"{args.input} ({w}x{h}) -> {path} ({w * args.scale}x{h * args.scale}), "
            f"x{args.scale} with {loaded.variant} from {loaded.path} in {seconds:.2f}s"
        )
        if loaded.note:
            print(f"note: {loaded.note}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from toolkit.authors import load_authors_checkpoint
    from toolkit.checkpoint import save_checkpoint

    model, source = load_authors_checkpoint(args.source)
    metadata = save_checkpoint(model, args.output, source=source)
    print(f"{args.source} ({source['variant']}, {metadata['params']:,} parameters) -> {args.output}")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from toolkit.registry import fetch_official

    print(fetch_official(args.name))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from toolkit.training import TrainOptions, train

    options = {k: v for k, v in vars(args).items() if k not in ("func", "command", "quiet")}
    opts = TrainOptions(**options, progress=not args.quiet, command="pcarn " + shlex.join(sys.argv[1:]))
    last = train(opts)
    print(f"finished: {last}")
    return 0


EXPORTED_SUFFIXES = (".onnx", ".tflite", ".mlpackage", ".pte")


def _is_exported_file(name: str) -> bool:
    return Path(name).suffix in EXPORTED_SUFFIXES


def _open_exported(name: str, scales: tuple[int, ...] | None = None):
    """An exported file as a model (its own runtime, fixed-size windows), imported lazily."""
    from export.file_model import FileModel

    model = FileModel.open(name)
    for scale in scales or ():
        model.require_scale(scale)
    return model


def _cmd_eval(args: argparse.Namespace) -> int:
    from toolkit.evaluate import evaluate, validation_images
    from toolkit.loading import load_any

    if _is_exported_file(args.model):
        file_model = _open_exported(args.model, args.scales)  # one head: another scale is refused
        args.scales = file_model.scales
        model, variant = file_model, f"{file_model.metadata.get('variant', '?')} {file_model.precision}"
        provenance = {
            "path": args.model,
            "variant": file_model.metadata.get("variant"),
            "format": file_model.fmt.name,
            "precision": file_model.precision,
            "windows": None if file_model.window is None else list(file_model.window),
            "window_overlap": file_model.overlap,
        }
    else:
        args.scales = args.scales or (2, 3, 4)
        loaded = load_any(args.model, quiet=args.json == "-")
        for scale in args.scales:
            loaded.require_scale(scale)
        model, variant, provenance = loaded.model, loaded.variant, loaded.provenance
    images = validation_images(args.data)
    results = evaluate(model, images, args.scales)
    document = {
        **provenance,
        "images": sorted(images),
        "convention": "PSNR-Y/SSIM-Y, BT.601 studio range, border = scale; "
        "LPIPS AlexNet-lin v0.1 on RGB, same crop, lower is better",
        "results": results,
    }
    if _emit_json(document, args.json):
        return 0
    print(
        f"{provenance['path']} ({variant}) on {len(images)} images: PSNR-Y / SSIM-Y / LPIPS "
        "(AlexNet-lin v0.1, lower is better), border = scale"
    )
    print(f"{'scale':>6} {'model':>24} {'bicubic':>24} {'gain':>8}")
    for head, m in results.items():
        print(
            f"{head:>6} {m['psnr_y']:8.2f} / {m['ssim_y']:.4f} / {m['lpips']:.3f} "
            f"{m['bicubic_psnr_y']:8.2f} / {m['bicubic_ssim_y']:.4f} / {m['bicubic_lpips']:.3f} "
            f"{m['gain_db']:+7.2f}"
        )
    return 0


def _cmd_ship(args: argparse.Namespace) -> int:
    from toolkit.shipping import refresh, ship

    if args.refresh == bool(args.run):
        raise PcarnError("pcarn ship takes a run folder, or --refresh (the shipped checkpoint), not both")
    result = refresh(args.name, val=args.val) if args.refresh else ship(args.run, args.name, val=args.val)
    print(f"{result['checkpoint']} and {result['card']} written")
    for head, m in result["metrics"].items():
        share = m.get("fraction_of_reference_gain")
        extra = f", {100 * share:.0f}% of the reference gain" if share is not None else ""
        print(
            f"  {head}: {m['psnr_y']:.2f} dB, {m['gain_db']:+.2f} dB over bicubic, "
            f"LPIPS {m['lpips']:.3f}{extra}"
        )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from export.common import parse_size
    from export.formats import FORMATS, PRECISIONS
    from export.pipeline import export_all
    from toolkit.calibration import DEFAULT_SAMPLES
    from toolkit.loading import load_any

    formats = check_names(args.formats.split(","), FORMATS, "format")
    precisions = check_names(args.precision.split(","), PRECISIONS, "precision")
    loaded = load_any(args.model, quiet=args.json == "-")
    try:
        size = parse_size(args.input_size) if args.input_size else None
    except ValueError as exc:
        raise PcarnError(str(exc)) from None
    manifest = export_all(
        loaded.model,
        Path(args.out),
        formats=formats,
        scales=list(args.scales),
        precisions=precisions,
        input_size=size,
        provenance=loaded.provenance,
        coreml_image_input=args.coreml_image_input,
        dynamic=args.dynamic,
        progress=args.json != "-",
        calib=args.calib,
        calib_samples=DEFAULT_SAMPLES if args.calib_samples is None else args.calib_samples,
        exit_at_lr=args.exit_at_lr,
        shuffle=args.shuffle,
    )
    if not _emit_json(manifest, args.json):
        print(f"{'file':32} {'bytes':>10}  checks  parity")
        for e in manifest["files"]:
            if e["status"] != "ok":
                print(f"{e['path']:32} {'-':>10}  {e['status']}: {e['reason']}")
                continue
            checks = "pass" if all(c["passed"] is not False for c in e["checks"].values()) else "FAIL"
            parity = e["parity"]
            value = (
                f"max abs {parity['max_abs']:.1e}, {parity['psnr_db']:.1f} dB" if parity["ran"] else "static"
            )
            if "quantization" in parity:  # int8: judged by the picture's loss on the validation photos
                value = f"PSNR-Y cost {parity['quantization']['cost_db']:+.3f} dB on validation photos"
            verdict = "pass" if parity["passed"] else "FAIL"
            print(f"{e['path']:32} {e['bytes']:>10,}  {checks:6}  {verdict} ({value})")
        print(f"manifest: {Path(args.out) / 'manifest.json'}; report: {Path(args.out) / 'report.md'}")
    return 0 if manifest["all_passed"] else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.bench import run_bench
    from benchmarks.report import table, write_report
    from export.common import parse_size

    try:
        size = parse_size(args.input_size) if args.input_size else None
    except ValueError as exc:
        raise PcarnError(str(exc)) from None
    files = [Path(f) for f in args.files]
    for f in files:
        if not f.exists():
            raise PcarnError(f"file not found: {f}")
    report = run_bench(
        variants=args.variants.split(","),
        scales=list(args.scales),
        runtimes=args.runtimes.split(","),
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        peers=[p for p in args.peers.split(",") if p],
        files=files or None,
        input_size=size,
        precisions=args.precisions.split(","),
        tiles=args.tiles,
        exit_at_lr=args.exit_at_lr,
        shuffle=args.shuffle,
    )
    command = "pcarn " + shlex.join(sys.argv[1:])
    if not _emit_json({**report, "command": command}, args.json):
        print(table(report))
    if args.report:
        paths = write_report(report, Path(args.report), command)
        print(f"report: {paths['report']}")
    return 0


def _cmd_deploy(args: argparse.Namespace) -> int:
    from benchmarks.deploy import deploy, lpips_text
    from toolkit.loading import is_loadable
    from toolkit.registry import known_names

    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if not is_loadable(m)]
    if unknown or not models:
        raise PcarnError(
            f"unknown model {unknown[0] if unknown else ''!r} for --models; give checkpoint files or names "
            f"from {', '.join(known_names())}"
        )
    summary = deploy(
        models,
        Path(args.out),
        scales=list(args.scales),
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        calib=args.calib,
    )
    from benchmarks.report import table

    print(table(summary["bench"]))
    print("\nsummary:")
    for name, m in summary["models"].items():
        worst = m.get("worst_fp32_abs")
        parity = f"; worst fp32 error vs PyTorch {worst:.1e}" if worst is not None else ""
        state = (
            "all passed" if m["all_passed"] else f"FAILED: {', '.join(m.get('failed') or [m.get('note')])}"
        )
        print(f"  {name}: {m['files']} files, graph checks and parity {state}{parity}")
        for precision, v in (m.get("vs_pytorch") or {}).items():
            print(
                f"    {precision} output vs PyTorch's on a real photo (worst file): "
                f"PSNR-Y {v['psnr_y']:.1f} dB, LPIPS {lpips_text(v['lpips'])}"
            )
        if m.get("int8_cost_db") is not None:
            print(
                f"    int8 cost on the scikit-image photos (worst file): {m['int8_cost_db']:+.3f} dB PSNR-Y"
            )
    print(f"  report: {Path(args.out) / 'report.md'}")
    return 0 if summary["all_passed"] else 1


def _cmd_profile(args: argparse.Namespace) -> int:
    from benchmarks.op_profile import format_profile, profile, profile_variants

    try:
        if args.files:
            missing = [f for f in args.files if not Path(f).exists()]
            if missing:
                raise PcarnError(f"file not found: {missing[0]}")
            results = [profile(Path(f), args.threads, args.repeats, args.warmup) for f in args.files]
        else:
            variants = args.variants.split(",")
            results = profile_variants(
                variants, args.scale, args.runtimes.split(","), args.threads, args.repeats, args.warmup
            )
    except (ValueError, KeyError) as exc:
        raise PcarnError(str(exc).strip("'")) from None
    command = "pcarn " + shlex.join(sys.argv[1:])
    if not _emit_json({"command": command, "profiles": results}, args.json):
        print("\n\n".join(format_profile(r) for r in results))
    return 0


def build_parser() -> argparse.ArgumentParser:
    # The format table is the one source of the export and bench choices.
    from benchmarks.runtimes import RUNTIMES
    from export.formats import FORMATS, PRECISIONS

    parser = OneLineParser(prog="pcarn", description="PCARN super-resolution toolkit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    info = sub.add_parser("info", help="parameters and MultAdds at 720p of a variant")
    info.add_argument("--variant", default="pcarn-m")
    json_option(info)
    info.set_defaults(func=_cmd_info)

    up = sub.add_parser("upscale", help="super-resolve one image")
    up.add_argument("input")
    up.add_argument("output", help="a .png, .jpg/.jpeg or .webp path")
    up.add_argument("--scale", type=scale_type, default=4, help="2, 3 or 4 (default 4)")
    up.add_argument(
        "--model", default="pcarn-m", help="checkpoint path (.safetensors or authors' .pth) or name"
    )
    up.add_argument("--variant", help="fail unless the model is this variant")
    up.add_argument("--tile", type=int, default=256, help="LR tile size; 0 = whole image at once")
    up.add_argument("--tile-overlap", type=int, default=24, help="LR context pixels around each tile")
    up.add_argument("--quiet", action="store_true")
    up.set_defaults(func=_cmd_upscale)

    imp = sub.add_parser("import", help="convert an authors' .pth into our .safetensors format")
    imp.add_argument("source")
    imp.add_argument("output")
    imp.set_defaults(func=_cmd_import)

    tr = sub.add_parser("train", help="train a generator: stage l1, then stage gan (section 3.5)")
    add_train_arguments(tr)
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser("eval", help="PSNR-Y, SSIM-Y and LPIPS of a model and of bicubic per scale")
    ev.add_argument("--model", default="pcarn-m")
    ev.add_argument("--data", default="skimage", help="folder of HR images or 'skimage' (default)")
    ev.add_argument("--scales", type=scales_type, help="default 2,3,4 (an exported file: its own head)")
    json_option(ev)
    ev.set_defaults(func=_cmd_eval)

    sh = sub.add_parser("ship", help="evaluate a run's best checkpoint and ship it under models/ with a card")
    sh.add_argument("run", nargs="?", help="training run folder (omit with --refresh)")
    sh.add_argument("--name", required=True, choices=list(SHIPPED_NAMES))
    sh.add_argument(
        "--refresh", action="store_true", help="re-evaluate the shipped checkpoint NAME and rewrite its card"
    )
    sh.add_argument("--val", default="skimage")
    sh.set_defaults(func=_cmd_ship)

    ex = sub.add_parser("export", help="export scale heads to ONNX, Core ML and TFLite, checked and compared")
    ex.add_argument("--model", default="pcarn-m")
    ex.add_argument(
        "--formats", default=",".join(FORMATS), help=f"comma list (default: all of {','.join(FORMATS)})"
    )
    ex.add_argument("--scales", type=scales_type, default=(2, 3, 4))
    ex.add_argument(
        "--precision",
        default=",".join(PRECISIONS),
        help=f"comma list (default: all of {','.join(PRECISIONS)})",
    )
    ex.add_argument("--input-size", help="fixed LR input HxW (default: the LR size of a 720p output)")
    ex.add_argument("--dynamic", action="store_true", help="ONNX: dynamic height and width")
    ex.add_argument(
        "--exit-at-lr",
        action="store_true",
        help="ONNX, TFLite and ExecuTorch: the exit conv folded before the last depth-to-space (exact; "
        "PCARN-M x4 1.48x faster on ONNX Runtime, 1.08x on LiteRT: benchmarks/results/exit-rewrite-x4.json)",
    )
    ex.add_argument(
        "--shuffle",
        choices=("depth-to-space", "conv-transpose"),
        default="depth-to-space",
        help="ONNX pixel shuffle: DepthToSpace (default; what mobile execution providers map natively) "
        "or a one-hot grouped ConvTranspose (exact; faster on ONNX Runtime's CPU provider)",
    )
    ex.add_argument(
        "--coreml-image-input", action="store_true", help="Core ML: RGB ImageType input scaled 1/255"
    )
    ex.add_argument(
        "--calib",
        help="int8: folder of photos to calibrate activations on (default: data/debian-photos, "
        "else scikit-image's non-validation photos, with a note)",
    )
    ex.add_argument(
        "--calib-samples", type=int, help="int8: how many seeded crops to calibrate on (default 8)"
    )
    ex.add_argument("--out", required=True)
    json_option(ex)
    ex.set_defaults(func=_cmd_export)

    be = sub.add_parser(
        "bench", help="CPU latency at 720p across runtimes, the machine ceiling, the paper's claims"
    )
    be.add_argument("files", nargs="*", help="exported files to time instead of the variants")
    be.add_argument("--variants", default="pcarn,pcarn-m", help="comma list of presets")
    be.add_argument("--peers", default="srresnet", help="comma list from srresnet,rrdbnet ('' for none)")
    be.add_argument("--scales", type=scales_type, default=(2, 3, 4))
    be.add_argument(
        "--runtimes",
        default=",".join(RUNTIMES),
        help=f"comma list (default: all of {','.join(RUNTIMES)}; one that cannot run here says why once)",
    )
    be.add_argument(
        "--precisions",
        default="fp32,int8",
        help=f"comma list from {','.join(PRECISIONS)}: PCARN variants in the exported files of each "
        "(torch runtimes and peers: fp32)",
    )
    be.add_argument(
        "--exit-at-lr",
        action="store_true",
        help="time the PCARN files exported with --exit-at-lr (exit conv before the last depth-to-space)",
    )
    be.add_argument(
        "--shuffle",
        choices=("depth-to-space", "conv-transpose"),
        default="depth-to-space",
        help="time the PCARN ONNX files exported with this --shuffle form",
    )
    be.add_argument(
        "--threads",
        type=counts_type,
        default=[os.cpu_count() or 1],
        help="comma list, e.g. 1,2 (a phone's big core, and all cores); claims use the largest",
    )
    be.add_argument(
        "--tiles",
        type=counts_type,
        default=[],
        help="square LR tile sizes (e.g. 256) timed beside 720p for the PCARN variants; the table "
        "gives ms per output megapixel",
    )
    be.add_argument("--repeats", type=int, default=5)
    be.add_argument("--warmup", type=int, default=1)
    be.add_argument("--input-size", help="LR HxW instead of the 720p-output size")
    json_option(be)
    be.add_argument("--report", help="write report.md and the plot into this folder")
    be.set_defaults(func=_cmd_bench)

    de = sub.add_parser("deploy", help="export the shipped models everywhere, check, compare and time them")
    de.add_argument(
        "--models",
        default=",".join(DEPLOY_DEFAULT),
        help=f"comma list of names or checkpoint files (default {','.join(DEPLOY_DEFAULT)}; "
        f"shipped: {', '.join(SHIPPED_NAMES)})",
    )
    de.add_argument("--scales", type=scales_type, default=(2, 3, 4))
    de.add_argument("--out", default="deploy")
    de.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    de.add_argument("--repeats", type=int, default=3)
    de.add_argument("--warmup", type=int, default=1)
    de.add_argument(
        "--calib",
        help="int8: folder of photos to calibrate on (default: data/debian-photos, else scikit-image's "
        "non-validation photos, with a note)",
    )
    de.set_defaults(func=_cmd_deploy)

    pr = sub.add_parser("profile", help="per-op time of exported graphs (ONNX Runtime, LiteRT/XNNPACK)")
    pr.add_argument("files", nargs="*", help=".onnx/.tflite files (default: export --variants at 720p)")
    pr.add_argument("--variants", default="pcarn,pcarn-m")
    pr.add_argument("--scale", type=scale_type, default=4)
    pr.add_argument("--runtimes", default="onnx,tflite", help="comma list from onnx,tflite")
    pr.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    pr.add_argument("--repeats", type=int, default=5)
    pr.add_argument("--warmup", type=int, default=2)
    json_option(pr)
    pr.set_defaults(func=_cmd_profile)

    fetch = sub.add_parser("fetch", help="download (or find) an authors' released checkpoint by name")
    fetch.add_argument("name")
    fetch.set_defaults(func=_cmd_fetch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PcarnError as exc:
        print(f"pcarn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pcarn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the promise is one line, never a traceback; PCARN_DEBUG shows it
        if os.environ.get("PCARN_DEBUG"):
            raise
        print(
            f"pcarn {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(set PCARN_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
