"""``pcarn export``: every (format, scale head, precision) file, checked and compared, plus a manifest.

Each format is independent: an exporter that fails or whose optional dependency is missing is
recorded with its reason and the others still run. ``DIR/manifest.json`` holds one entry per file;
``DIR/report.md`` is the same as a table.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from pathlib import Path

from tqdm import tqdm

from export.accelerators import TARGETS, not_checked
from export.accelerators import sources as accelerator_sources
from export.accelerators import table as accelerator_table
from export.checks import expectation
from export.choice_store import ChoiceStore
from export.common import DeployHead, default_input_size, export_metadata, native_output_captured
from export.exit_at_lr import ExitAtLR
from export.formats import FORMATS, PRECISIONS, get_format
from export.graph import GRAPH_OPTIONS, GraphForm
from export.image_io import IMAGE, image_metadata
from export.interface import ExportFormat
from export.job import ExportJob
from export.mixed import KEPT_WIDER
from export.options import INT8_BUDGET_DB, QUANTIZED_PRECISIONS, refuse_unaccepted
from export.parity import parity_sizes, runtime_parity
from export.quant_cost import INT8_MAX_COST_DB, quantization_cost
from models import PCARN
from toolkit.atomic import atomic_path
from toolkit.calibration import DEFAULT_SAMPLES, CalibrationSet, calibration_set
from toolkit.errors import PcarnError, check_names
from toolkit.metrics.evaluate import validation_images

TUNED_WEIGHTS = "int8_weights"  # metadata and manifest key: a quantized file made from tuned weights
TUNED_CACHE = ("tuned-weights",)  # the head cache's own part for its tuned graph
RECALLED = "recalled from an earlier run"  # manifest: a choice or ranges taken from the store


def output_shape(layout: str, size: tuple[int, int], scale: int) -> list[int]:
    h, w = size[0] * scale, size[1] * scale
    return [1, 3, h, w] if layout == "NCHW" else [1, h, w, 3]


def input_shape(layout: str, size: tuple[int, int]) -> list[int]:
    return [1, 3, *size] if layout == "NCHW" else [1, *size, 3]


def export_file(
    model: PCARN,
    fmt: ExportFormat,
    scale: int,
    precision: str,
    out: Path,
    *,
    input_size: tuple[int, int] | None = None,
    provenance: dict | None = None,
    options: dict | None = None,
    cache: dict | None = None,
    calibration: CalibrationSet | None = None,
    calib_samples: int = DEFAULT_SAMPLES,
    choices: ChoiceStore | None = None,
    tuned: PCARN | None = None,
) -> Path:
    """Write one file: the code path of ``pcarn export``, which ``pcarn bench`` and ``pcarn profile``
    also use, so what they time is what ships. ``options`` (``export.options``) that ``fmt`` does not
    take are refused. ``cache`` (one dict per head, kept by the caller) lets a head's files share
    its trace and conversion across precisions; ``choices``: int8 choices made in earlier runs;
    ``tuned``: the head's weights tuned for int8 (``toolkit/training/int8_tuning.py``), which a
    quantized file is made from (its own cache: the graph differs)."""
    accepted = refuse_unaccepted([fmt], options or {})
    if not fmt.takes(precision):
        taken = ", ".join((*fmt.precisions, *fmt.extra_precisions))
        raise PcarnError(f"{fmt.name} takes precisions {taken}, not {precision!r}")
    ok, reason = fmt.available()
    if not ok:
        raise PcarnError(reason)
    size = input_size or default_input_size(scale)
    out.mkdir(parents=True, exist_ok=True)
    path = out / fmt.file_name((provenance or {}).get("variant", "pcarn"), scale, precision)
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    metadata = export_metadata(model, scale, fmt.layout, precision, provenance)
    source = model
    if tuned is not None and precision in QUANTIZED_PRECISIONS:
        source, cache = tuned, (cache if cache is not None else {}).setdefault(TUNED_CACHE, {})
        metadata[TUNED_WEIGHTS] = "tuned for 8-bit rounding (pcarn int8-tune) from these weights"
    if precision in QUANTIZED_PRECISIONS and calibration is not None:
        metadata["calibration"] = f"{calib_samples} crops of {calibration.source}"
    form = GraphForm.of(accepted, fmt.options)
    metadata.update(form.metadata())
    if accepted.get("io") == IMAGE:
        metadata.update(image_metadata())
    lowering = {k: v for k, v in accepted.items() if k not in GRAPH_OPTIONS}  # the format's own options
    with native_output_captured():
        job = ExportJob(
            DeployHead(source, scale),
            path,
            size,
            precision,
            metadata,
            {} if cache is None else cache,
            calibration,
            calib_samples,
            form,
            choices,
        )
        fmt.export(job, **lowering)
    return path


def export_all(
    model: PCARN,
    out: Path,
    *,
    formats: list[str],
    scales: list[int],
    precisions: list[str] | None = None,
    input_size: tuple[int, int] | None = None,
    provenance: dict | None = None,
    options: dict | None = None,
    progress: bool = True,
    calib: str | Path | None = None,
    calib_samples: int = DEFAULT_SAMPLES,
    val: str | Path = "skimage",
    bar_position: int = 0,
    choices: ChoiceStore | None = None,
    tuned: dict[int, PCARN] | None = None,
) -> dict:
    """Every (format, head, precision) file with its checks and parity; int8 files are calibrated on
    ``calib`` (a photo folder; see ``toolkit.calibration.calibration_set`` for the default) and
    judged by their PSNR-Y cost on ``val`` (the scikit-image photos, or a folder). ``options``
    (``export.options``) must be taken by every format asked for. ``precisions`` None: each format
    in every precision it takes; a list: each format in each of them, refused up front where a
    format does not take one, so every file asked for is written or the run is refused. ``choices``:
    where int8 files find the mixed-precision choices of earlier runs (``export/choice_store.py``);
    ``tuned``: heads tuned for int8, by scale, that the quantized files are made from (their cost is
    still measured against ``model``)."""
    chosen = [get_format(f) for f in check_names(formats, FORMATS, "format")]
    options = refuse_unaccepted(chosen, options or {})
    if precisions is not None:
        check_names(precisions, PRECISIONS, "precision")
        for fmt in chosen:
            lacking = [p for p in precisions if not fmt.takes(p)]
            if lacking:
                raise PcarnError(
                    f"{fmt.name} does not take {lacking[0]} (it takes {', '.join(fmt.precisions)}); "
                    "leave the format out or ask for precisions it takes"
                )
    missing = [s for s in scales if s not in model.config.scales]
    if missing:
        raise PcarnError(f"scale {missing[0]} is not in this checkpoint (it has {list(model.config.scales)})")
    if input_size is not None and min(input_size) < 1:
        raise PcarnError(f"impossible input size {input_size}")
    if out.exists() and not out.is_dir():
        raise PcarnError(f"--out {out} exists and is not a folder")
    if not out.parent.is_dir():
        raise PcarnError(f"output folder's parent does not exist: {out.parent}")
    jobs = [(f, s, p) for f in chosen for s in scales for p in (precisions or f.precisions) if f.takes(p)]
    calibration = val_images = None
    if any(p in QUANTIZED_PRECISIONS for _, _, p in jobs):  # bad photos or counts fail here, first
        if calib_samples < 1:
            raise PcarnError(f"--calib-samples must be at least 1, got {calib_samples}")
        calibration = calibration_set(calib)
        calibration.crops(scales[0], (8, 8), 1)
        val_images = validation_images(val)  # the photos their cost is measured on, read once
    out.mkdir(exist_ok=True)  # only once nothing is left to refuse
    settings = {
        "input_size": input_size,
        "provenance": provenance,
        "options": options,
        "calibration": calibration,
        "calib_samples": calib_samples,
        "val": val,
        "val_images": val_images,
        "choices": choices,
        "tuned": tuned or {},
    }
    entries = []
    written: dict[tuple[int, str], dict[str, Path]] = {}  # (scale, precision) -> {format: file}
    caches: dict[int, dict] = {}  # scale -> what that head's exporters share across precisions
    label = f"exporting {(provenance or {}).get('variant', '')}".rstrip()
    bar = tqdm(jobs, desc=label, unit="file", disable=not progress, position=bar_position)
    calibrated = (
        None
        if calibration is None
        else {
            "photos": calibration.source,
            "samples": calib_samples,
            "note": calibration.note,
        }
    )
    for fmt, scale, precision in bar:
        bar.set_postfix_str(f"{fmt.name} x{scale} {precision}")
        siblings = written.setdefault((scale, precision), {})
        cache = caches.setdefault(scale, {})
        entries.append(_one(model, out, fmt, scale, precision, settings, siblings, cache))
        if len(entries) < len(jobs):  # a run cut short keeps the files it finished, and their results
            _write_manifest(out, _manifest(provenance, calibrated, entries, finished=False))
    manifest = _manifest(provenance, calibrated, entries, finished=True)
    _write_manifest(out, manifest)
    (out / "report.md").write_text(render_report(manifest))
    return manifest


def _manifest(provenance: dict | None, calibration: dict | None, entries: list[dict], finished: bool) -> dict:
    """The run's manifest; ``finished`` False while files are still to come (written after each)."""
    manifest = {
        "model": provenance or {},
        "calibration": calibration,
        "files": entries,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "finished": finished,
    }
    every_file = all(e.get("status") == "ok" and e.get("passed") for e in entries)
    manifest["all_passed"] = finished and every_file
    return manifest


def _write_manifest(out: Path, manifest: dict) -> None:
    with atomic_path(out / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")


def _one(model, out, fmt, scale, precision, settings, siblings, cache) -> dict:
    provenance = settings["provenance"]
    size = settings["input_size"] or default_input_size(scale)
    name = fmt.file_name((provenance or {}).get("variant", "pcarn"), scale, precision)
    image = settings["options"].get("io") == IMAGE
    layout = "NHWC" if image else fmt.layout
    entry = {
        "format": fmt.name,
        "scale": scale,
        "precision": precision,
        "path": name,
        "input_layout": f"{layout} uint8" if image else layout,
        "input_shape": input_shape(layout, size),
        "output_shape": output_shape(layout, size, scale),
    }
    started = time.perf_counter()
    try:
        path = export_file(
            model,
            fmt,
            scale,
            precision,
            out,
            input_size=size,
            provenance=provenance,
            options=settings["options"],
            cache=cache,
            calibration=settings["calibration"],
            calib_samples=settings["calib_samples"],
            choices=settings["choices"],
            tuned=settings["tuned"].get(scale),
        )
    except PcarnError as exc:
        return {**entry, "status": "unavailable", "passed": False, "reason": str(exc)}
    except Exception as exc:  # one exporter failing must not stop the others
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if os.environ.get("PCARN_DEBUG"):
            traceback.print_exc()
        return {**entry, "status": "failed", "passed": False, "reason": reason}
    siblings[fmt.name] = path
    entry["export_seconds"] = round(time.perf_counter() - started, 2)
    entry["bytes"] = _size(path)
    wide = fmt.read_metadata(path).get(KEPT_WIDER) if precision == "int8" else None
    if wide:  # which activations an int8 file kept wider (16-bit or float) for its budget
        entry[KEPT_WIDER] = wide
        store = settings["choices"]
        recalled = store is not None and path in store.recalled
        entry["choice"] = RECALLED if recalled else "made in this run"
    store = settings["choices"]
    if precision in QUANTIZED_PRECISIONS and store is not None:  # export/kept_ranges.py
        recalled = path in store.ranges_recalled
        entry["ranges"] = RECALLED if recalled else "measured in this run"
    if precision in QUANTIZED_PRECISIONS and scale in settings["tuned"]:
        entry[TUNED_WEIGHTS] = "tuned for 8-bit rounding (pcarn int8-tune); cost against the untuned model"
    entry["status"] = "ok"
    head = DeployHead(model, scale)  # what every file is judged against: the model as given
    rewritten = GraphForm.of(settings["options"], fmt.options).exit_at_lr
    started = time.perf_counter()
    with native_output_captured():
        graph = fmt.check(path, expectation(ExitAtLR(head) if rewritten else head), precision)
    entry["check_seconds"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    entry["ops"] = graph.ops
    entry["checks"] = graph.checks
    runnable, why_not = fmt.runnable()
    if not runnable and fmt.static_parity is not None:
        with native_output_captured():
            parity = fmt.static_parity(head, path, precision, siblings)
        parity["why_not_run"] = why_not
    elif not runnable:
        parity = {"ran": False, "passed": False, "rule": f"cannot run here: {why_not}"}
    else:
        try:
            parity = _run_parity(head, fmt, path, size, precision, model, settings, cache, image)
        except Exception as exc:  # noqa: BLE001 - a file its runtime refuses fails; the others go on
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            parity = {"ran": False, "passed": False, "rule": f"its runtime could not run it: {reason}"}
    entry["parity"] = parity
    entry["parity_seconds"] = round(time.perf_counter() - started, 2)
    entry["accelerators"] = _accelerators(fmt, path, precision)
    entry["passed"] = graph.passed and parity["passed"]
    return entry


def _run_parity(head, fmt, path, size, precision, model, settings, cache, image) -> dict:
    """The file run in its runtime against PyTorch; a quantized one judged by the picture's loss in
    dB of PSNR-Y on the validation photos, not by max abs error."""
    sizes = parity_sizes(size, bool(settings["options"].get("dynamic")))
    parity = runtime_parity(head, fmt.runner, path, sizes, precision, model, cache, image=image)
    if precision in QUANTIZED_PRECISIONS:
        cost = quantization_cost(
            head, path, size, cache, settings["val"], settings["val_images"], _max_cost(fmt, settings)
        )
        parity.update(
            passed=cost["passed"],
            rule=f"PSNR-Y cost {cost['cost_db']:+.3f} dB <= {cost['max_cost_db']} dB against fp32 "
            f"PyTorch on {len(cost['photos'])} validation photos ({settings['val']})",
            quantization=cost,
        )
    return parity


def _max_cost(fmt: ExportFormat, settings: dict) -> float:
    """The int8 budget where the format chooses precision per tensor, else the plain int8 gate."""
    if "int8_budget" in fmt.options:
        return settings["options"].get("int8_budget", INT8_BUDGET_DB)
    return INT8_MAX_COST_DB


def _accelerators(fmt: ExportFormat, path: Path, precision: str) -> dict | None:
    """The file's verdict per phone accelerator (``export/accelerators.py``); an analysis that
    breaks is reported as not checked, with why, rather than failing the file."""
    if fmt.accelerators is None:
        return None
    try:
        with native_output_captured():
            verdicts = fmt.accelerators(path, precision)
    except Exception as exc:  # noqa: BLE001 - the report says what went wrong
        reason = f"the analysis failed: {type(exc).__name__}: {exc}".splitlines()[0]
        return {target: not_checked(reason).as_dict() for target in TARGETS}
    return {target: verdict.as_dict() for target, verdict in verdicts.items()}


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _check_getter(checks: dict, mark: dict):
    return lambda key: mark[checks[key]["passed"]] if key in checks else "n/a"


def render_report(manifest: dict) -> str:
    lines = [
        "# Export report",
        "",
        f"Model: `{manifest['model'].get('path', '?')}` ({manifest['model'].get('variant', '?')}). "
        f"All files produced and passed: **{'yes' if manifest['all_passed'] else 'no'}**.",
        "",
        "| file | format | scale | precision | input | MB | grouped convs | fused act. | pixel shuffle | "
        "weights | parity | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    mark = {True: "pass", False: "FAIL", None: "n/a"}
    for e in manifest["files"]:
        if e["status"] != "ok":
            lines.append(
                f"| {e['path']} | {e['format']} | x{e['scale']} | {e['precision']} | | | | | | | | "
                f"{e['status']}: {e['reason']} |"
            )
            continue
        get = _check_getter(e["checks"], mark)
        parity = e["parity"]
        shape = "x".join(str(v) for v in e["input_shape"])
        lines.append(
            f"| {e['path']} | {e['format']} | x{e['scale']} | {e['precision']} | {shape} | "
            f"{e['bytes'] / 1e6:.2f} | {get('grouped_convs')} | {get('fused_activations')} | "
            f"{get('pixel_shuffle')} | {get('weight_sharing')} | "
            f"{mark[parity['passed']]}{'' if parity['ran'] else ' (static)'} | "
            f"{'pass' if e['passed'] else 'FAIL'} |"
        )
    ok = [e for e in manifest["files"] if e["status"] == "ok"]
    if any(e.get("accelerators") for e in ok):
        rules = "Rules from: " + "; ".join(accelerator_sources(ok)) + "."
        lines += ["", "## Accelerators", "", accelerator_table(ok), "", rules]
    lines += ["", "## Details", ""]
    for e in manifest["files"]:
        if e["status"] != "ok":
            continue
        lines.append(f"### {e['path']}")
        for name, check in e["checks"].items():
            lines.append(f"- {name}: {mark[check['passed']]} — {check['detail']}")
        parity = e["parity"]
        lines.append(
            f"- parity: {mark[parity['passed']]} — {parity['rule']}"
            + (f" ({parity['why_not_run']})" if "why_not_run" in parity else "")
        )
        if parity.get("lpips") is not None:
            lines.append(
                "- 8-bit output against PyTorch's on real photos (worst): "
                f"PSNR-Y {parity['psnr_y_8bit']:.1f} dB, LPIPS {parity['lpips']:.4f}"
            )
        if "quantization" in parity:
            q = parity["quantization"]
            lines.append(
                f"- on {len(q['photos'])} validation photos, PSNR-Y / SSIM-Y / LPIPS: this file "
                f"{q['file']['psnr_y']:.2f} / {q['file']['ssim_y']:.4f} / {q['file']['lpips']:.3f}, fp32 "
                f"PyTorch {q['pytorch_fp32']['psnr_y']:.2f} / {q['pytorch_fp32']['ssim_y']:.4f} / "
                f"{q['pytorch_fp32']['lpips']:.3f}: quantization costs {q['cost_db']:+.3f} dB"
            )
        if KEPT_WIDER in e:
            lines.append(f"- kept wider than 8 bits: {e[KEPT_WIDER]}")
        lines.append(f"- ops: {', '.join(f'{k} {v}' for k, v in sorted(e['ops'].items()))}")
        lines.append("")
    return "\n".join(lines) + "\n"
