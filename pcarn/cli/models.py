"""``pcarn models``: every name ``--model`` takes, what it is, where its weights are and, for the
checkpoints we ship, the quality their header records."""

from __future__ import annotations

import argparse

from pcarn.cli.flags import emit_json, json_option
from toolkit.weights.registry import MODELS, ModelEntry, local_copy


def add_parser(sub) -> None:
    mo = sub.add_parser("models", help="the model names --model takes, with their metrics")
    json_option(mo)
    mo.set_defaults(func=run)


def describe(entry: ModelEntry) -> dict:
    """One registry entry as ``pcarn models`` reports it."""
    from toolkit.weights.checkpoint import read_metadata

    where = local_copy(entry)
    row = {
        "name": entry.name,
        "aliases": list(entry.aliases),
        "variant": entry.variant,
        "stage": entry.stage,
        "source": entry.source,
        "what": entry.label,
        "sha256": entry.sha256,
        "url": entry.url,
        "weights": None if where is None else where.name,
        "metrics": None,
    }
    if entry.source == "shipped" and where is not None:
        values = (read_metadata(where).get("metrics") or {}).get("values") or {}
        row["metrics"] = {
            head: {"psnr_y": m.get("psnr_y"), "ssim_y": m.get("ssim_y"), "lpips": m.get("lpips")}
            for head, m in values.items()
        }
    elif entry.source == "shipped":
        row["weights"] = f"not shipped: falls back to {entry.fallback}"
    elif where is None:
        row["weights"] = "download on first use"
    return row


def _cell(row: dict) -> str:
    if not row["metrics"]:
        return f"pcarn eval --model {row['name']}"
    return "  ".join(
        f"{head} {m['psnr_y']:.2f}/{m['lpips']:.3f}"
        for head, m in row["metrics"].items()
        if m["lpips"] is not None
    )


def run(args: argparse.Namespace) -> int:
    rows = [describe(entry) for entry in MODELS.values()]
    if emit_json({"models": rows}, args.json):
        return 0
    print(f"{'name':21} {'also':11} {'variant':8} {'stage':5} {'weights':28} PSNR-Y / LPIPS (scikit-image)")
    for row in rows:
        print(
            f"{row['name']:21} {','.join(row['aliases']) or '-':11} {row['variant']:8} {row['stage']:5} "
            f"{(row['weights'] or '')[:28]:28} {_cell(row)}"
        )
    return 0
