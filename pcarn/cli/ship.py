"""``pcarn ship``: evaluate a run's best checkpoint and ship it under models/ with its card."""

from __future__ import annotations

import argparse

from toolkit.errors import PcarnError
from toolkit.weights.registry import SHIPPED_NAMES


def add_parser(sub) -> None:
    sh = sub.add_parser("ship", help="evaluate a run's best checkpoint and ship it under models/ with a card")
    sh.add_argument("run", nargs="?", help="training run folder (omit with --refresh)")
    sh.add_argument("--name", required=True, choices=list(SHIPPED_NAMES))
    sh.add_argument(
        "--refresh", action="store_true", help="re-evaluate the shipped checkpoint NAME and rewrite its card"
    )
    sh.add_argument("--val", default="skimage")
    sh.add_argument(
        "--held-out", help="a folder holding the held-out photos (toolkit.data.HELD_OUT): GAN cards"
    )
    sh.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from toolkit.cards.shipping import refresh, ship

    if args.refresh and args.run:
        raise PcarnError("pcarn ship takes a run folder or --refresh (the shipped checkpoint), not both")
    if not args.refresh and not args.run:
        raise PcarnError(
            f"say what to ship: a training run folder (pcarn ship RUN --name {args.name}), or --refresh "
            "to re-evaluate the shipped checkpoint"
        )
    where = {"val": args.val, "held_out": args.held_out}
    result = refresh(args.name, **where) if args.refresh else ship(args.run, args.name, **where)
    print(f"{result['checkpoint']} and {result['card']} written")
    for head, m in result["metrics"].items():
        share = m.get("fraction_of_reference_gain")
        extra = f", {100 * share:.0f}% of the reference gain" if share is not None else ""
        print(
            f"  {head}: {m['psnr_y']:.2f} dB, {m['gain_db']:+.2f} dB over bicubic, "
            f"LPIPS {m['lpips']:.3f}{extra}"
        )
    return 0
