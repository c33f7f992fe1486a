"""What every exporter is given: one scale head, where to write, its input size, precision and
metadata, and what the head's other files in the same run share (its graph, trace, calibration)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from export.graph import GraphForm
from toolkit.calibration import DEFAULT_SAMPLES, CalibrationSet
from toolkit.errors import PcarnError

if TYPE_CHECKING:  # the store imports the choice rules, which need nothing of the job
    from export.choice_store import ChoiceStore
    from export.mixed import WideChoice


@dataclass(frozen=True)
class ExportJob:
    """What every exporter is given: one scale head, where to write, the fixed input size, the
    precision and the metadata document for the file's native slot."""

    head: nn.Module  # export.common.DeployHead: NCHW in and out, output mean folded
    path: Path
    input_size: tuple[int, int]
    precision: str
    metadata: dict
    # shared by the jobs of the same head in one export run: see ``reuse``
    cache: dict = field(default_factory=dict)
    calibration: CalibrationSet | None = None  # the photos int8 activations are calibrated on
    calib_samples: int = DEFAULT_SAMPLES
    form: GraphForm = GraphForm()  # the exit placement and shuffle form the options chose
    choices: ChoiceStore | None = None  # int8 choices of earlier runs (``export/choice_store.py``)

    @property
    def graph(self) -> nn.Module:
        """The head in its form (``export.graph``), built once per head and shared by its files."""
        return self.reuse(("graph", self.form), lambda: self.form.build(self.head))

    def calibration_inputs(self, size: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Seeded LR crops (HxWx3 float32 in [0, 1]) at ``size`` (default: this file's input size),
        shared by the head's int8 files so every format is calibrated on the same pixels."""
        if self.calibration is None:
            raise PcarnError("int8 files need calibration photos: pass --calib DIR")
        size = size or self.input_size
        scale = int(self.metadata["scale"])
        return self.reuse(
            ("calibration", self.calibration.source, self.calib_samples, size),
            lambda: self.calibration.crops(scale, size, self.calib_samples),
        )

    def choice(self, key: tuple, make: Callable[[], WideChoice]) -> WideChoice:
        """A mixed-precision choice: ``make()`` once per head in this run, and not at all where
        ``choices`` holds one made from the same inputs."""
        if self.choices is None:
            return self.reuse(key, make)
        return self.reuse(key, lambda: self.choices.recall(self, key, make))

    def ranges(self, key: tuple, measure: Callable[[], dict]) -> dict:
        """Activation ranges (``export/kept_ranges.py``): ``measure()``, unless ``choices`` holds
        ranges measured on the same graph and inputs."""
        if self.choices is None:
            return measure()
        return self.choices.recall_ranges(self.path, key, measure)

    def reuse(self, key: tuple, make: Callable[[], Any]) -> Any:
        """``make()``, computed once for this head and input size and shared by its other files in
        the same export run: each head is traced and converted once, not once per precision."""
        key = (*key, self.input_size)
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]
