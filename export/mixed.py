"""Mixed-precision int8, format by format: which activations stay wider than 8 bits so that a head's
int8 cost fits the budget.

Plain 8-bit activations cost PCARN-M x2 +0.28 dB PSNR-Y on photos it was never calibrated on, and
the loss is not in one layer: it lives in the tensors that carry the picture itself (the
mean-subtracted input, the entry conv's output that the global residual adds back, the concatenations,
the upsampling path and the output). So the choice is measured, not guessed, the same way for every
format; only how a graph is run with some activations at 8 bits differs (``export/onnx/mixed.py``:
8-bit resolution inside 16-bit Q/DQ; ``export/pt2e_mixed.py``: Q/DQ pairs bypassed in a PT2E graph):

1. the wide graph (every activation wider: 16-bit or float) sets the noise floor;
2. each activation alone at 8 bits adds rounding noise to the output, measured on selection crops
   (other crops of the calibration photos, never the photos the cost is reported on);
3. the noisiest stay wide: the fewest of them for which the graph with every other activation at
   8 bits costs at most half the budget on the selection crops (each crop's fp32 error against its
   HR plus the added noise); the other half is left for photos unlike the calibration ones.

The cost is judged crop by crop and averaged, as the reported cost averages photos' PSNR: rounding
noise hardly depends on the picture, but the dB it costs does (a smooth photo whose fp32 error is
small pays more for the same noise). A cost pooled over the crops' errors is the detailed crops'
cost; it predicted +0.02 dB for pcarn-m-gan x2 where the held-out photos (macro shots, 41 dB) paid
+0.17. The worst crop instead is too strict: a flat patch of sky makes every tensor wide. The
selection photos are shrunk like the validation photos (``HELD_OUT_LONG_SIDE``), so a crop holds
as much of a scene as a validation photo's pixels do.

Weights come first. Per-channel int8 weights alone can cost more than the budget (pcarn-m-gan x2:
+0.17 dB on the held-out photos with every activation 16-bit; the entry conv's weights are most of
it), and no activation choice reaches below that floor. So where a format can, the same rule picks
the fewest conv weights to keep float for int8 weights alone to cost at most ``WEIGHT_SHARE`` of
the selection share; the activation choice is then made on the graph with those convs float.

The choice is made on a small copy of the graph (``SELECT_SIZE``); activation names do not depend on
the input size, so it applies to the file's own graph, which is calibrated as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from toolkit.data import HELD_OUT_LONG_SIDE
from toolkit.metrics.fidelity import rgb_to_y

SELECT_SIZE = (96, 128)
SELECT_SAMPLES = 8
SAFETY = 0.5  # share of the budget the selection crops may use
WEIGHT_SHARE = 0.5  # of that share, what int8 weights alone may cost before some stay float


@dataclass(frozen=True)
class WideChoice:
    """Which activation tensors stay wider than 8 bits, and what the selection crops predicted."""

    wide: tuple[str, ...]
    activations: int
    predicted_cost_db: float
    all_int8_cost_db: float
    kept_as: str = "16-bit"  # what a wide activation is in the file: 16-bit or float
    float_weights: tuple[str, ...] = ()  # conv weights kept float (their convs run in float)
    # of ``wide``, those kept float where even 16-bit is not enough (ONNX; the rest are ``kept_as``)
    float_activations: tuple[str, ...] = ()

    def summary(self) -> str:
        weights = f"{len(self.float_weights)} conv weights float, " if self.float_weights else ""
        kept = self.kept_as
        if self.float_activations:
            floats = len(self.float_activations)
            kept = f"wider ({len(self.wide) - floats} {self.kept_as}, {floats} float)"
        return (
            f"{weights}{len(self.wide)} of {self.activations} activations {kept} (predicted cost "
            f"{self.predicted_cost_db:+.3f} dB on selection crops; all 8-bit {self.all_int8_cost_db:+.3f} dB)"
        )

    def note(self) -> str:
        """The file's metadata and manifest entry (``KEPT_WIDER``)."""
        floats = f"; float: {', '.join(self.float_activations)}" if self.float_activations else ""
        weights = f"; float weights: {', '.join(self.float_weights)}" if self.float_weights else ""
        return f"{self.summary()}: {', '.join(self.wide) or 'none'}{floats}{weights}"


KEPT_WIDER = "kept_wider"  # metadata key: the activations an int8 file kept wider, and why
FLOAT_CONVS = "float_convs"  # metadata key: how many convs a mixed int8 file runs in float
FLOAT_ACTIVATIONS = "float_activations"  # metadata key: an ONNX int8 file's float activations, by name


def y_plane(nhwc_rgb: np.ndarray) -> np.ndarray:
    """The metric's view of one HxWx3 output in [0, 1]: rounded to 8-bit pixels, then Y."""
    return rgb_to_y(np.clip(np.round(nhwc_rgb * 255.0), 0, 255))


def choose_kept(
    names: Sequence[str],
    outputs: Callable[[Sequence[str]], list[np.ndarray]],
    reference: list[np.ndarray],
    hr: list[np.ndarray],
    budget_db: float,
    border: int,
    kept_as: str,
) -> WideChoice:
    """The fewest ``names`` to keep wide for the predicted cost to fit ``SAFETY * budget_db``.

    ``outputs(narrow)``: the Y planes of the selection crops through the graph with the ``narrow``
    activations at 8 bits and the others wide; ``reference``: the same through the fp32 graph; ``hr``:
    the crops' HR RGB; ``border``: pixels the metric ignores at each edge. The predicted cost is the
    crops' mean; activations are ranked by the noise they add relative to each crop's own error."""
    crop = (slice(border, -border or None),) * 2

    def mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray([np.mean((x - y)[crop] ** 2) for x, y in zip(a, b, strict=True)])

    error = np.maximum(mse(reference, [rgb_to_y(h) for h in hr]), 1e-6)  # per crop
    floor = mse(outputs(()), reference)

    def relative(narrow: Sequence[str]) -> np.ndarray:  # each crop's added noise over its own error
        return np.maximum(mse(outputs(narrow), reference) - floor, 0.0) / error

    cost = lambda extra: float(np.mean(10.0 * np.log10(1.0 + floor / error + extra)))  # noqa: E731
    wide_cost = cost(np.zeros_like(error))
    if wide_cost > SAFETY * budget_db:  # even all wide does not fit: all stay wide, no ranking needed
        all_int8 = cost(relative(names))
        return WideChoice(tuple(names), len(names), wide_cost, all_int8, kept_as)
    added = {name: float(np.sum(relative((name,)))) for name in names}
    ranked = sorted(names, key=added.get, reverse=True)

    costs: dict[int, float] = {len(ranked): wide_cost}

    def measured(wide: int) -> float:  # the mean cost with the ``wide`` noisiest kept wide
        if wide not in costs:
            costs[wide] = cost(relative(ranked[wide:]))
        return costs[wide]

    # Noise powers roughly add, so the ranking holds; the count is found by bisection on the
    # measured cost of each candidate graph (7 runs for 69 activations).
    all_int8 = measured(0)
    low, high = 0, len(ranked)  # measured(high) fits by construction
    while low < high:
        mid = (low + high) // 2
        if measured(mid) <= SAFETY * budget_db:
            high = mid
        else:
            low = mid + 1
    return WideChoice(tuple(ranked[:high]), len(ranked), float(measured(high)), float(all_int8), kept_as)


@dataclass(frozen=True)
class Selection:
    """What a head's choice is made on: a small input size, calibration crops at that size (the
    graph's ranges) and other LR/HR crops of the calibration photos (the measured noise)."""

    size: tuple[int, int]
    crops: list[np.ndarray]
    pairs: list[tuple[np.ndarray, np.ndarray]]
    border: int  # the metric's: ``scale`` pixels at each edge


def selection_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """``SELECT_SIZE``, or the file's own input size where that is smaller."""
    return (min(SELECT_SIZE[0], input_size[0]), min(SELECT_SIZE[1], input_size[1]))


def _selection_pairs(calibration, scale: int, size: tuple[int, int]) -> list:
    """The LR/HR crops a choice is judged on: seeded apart from the calibration crops, the photos
    shrunk like the validation photos."""
    return calibration.pairs(scale, size, SELECT_SAMPLES, seed=1, long_side=HELD_OUT_LONG_SIDE)


def selection_of(calibration, scale: int, input_size: tuple[int, int], samples: int) -> Selection:
    """What ``selection`` gives an export job, from a ``toolkit.calibration.CalibrationSet``."""
    size = selection_size(input_size)
    return Selection(
        size, calibration.crops(scale, size, samples), _selection_pairs(calibration, scale, size), scale
    )


def selection(job) -> Selection:
    """``job``'s (an ``export.job.ExportJob``) selection crops (``selection_of``), shared by the
    head's files in the run."""
    size = selection_size(job.input_size)
    crops = job.calibration_inputs(size)  # first: it refuses a job without calibration photos
    scale = int(job.metadata["scale"])
    pairs = job.reuse(
        ("selection", job.calibration.source, size), lambda: _selection_pairs(job.calibration, scale, size)
    )
    return Selection(size, crops, pairs, scale)
