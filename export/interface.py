"""The exporter interface: what one file format must provide to the pipeline, the checks, parity,
``pcarn bench``, ``pcarn profile`` and ``pcarn deploy``.

A format is one module that builds one :class:`ExportFormat`; ``export/formats.py`` lists them. The
rest of the toolkit never asks which format it holds: it calls these fields.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from torch import nn

from export.graph import GraphForm
from toolkit.calibration import DEFAULT_SAMPLES, CalibrationSet
from toolkit.errors import PcarnError


class FormatUnavailable(PcarnError):
    """This format cannot export or run here; the message says why."""


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

    @property
    def graph(self) -> nn.Module:
        """The head in its form (``export.graph``), built once per head and shared by its files."""
        return self.reuse(("graph", self.form), lambda: self.form.build(self.head))

    def calibration_inputs(self) -> list[np.ndarray]:
        """Seeded LR crops (HxWx3 float32 in [0, 1]) at this file's input size, shared by the head's
        int8 files so every format is calibrated on the same pixels."""
        if self.calibration is None:
            raise PcarnError("int8 files need calibration photos: pass --calib DIR")
        scale = int(self.metadata["scale"])
        return self.reuse(
            ("calibration", self.calibration.source, self.calib_samples),
            lambda: self.calibration.crops(scale, self.input_size, self.calib_samples),
        )

    def reuse(self, key: tuple, make: Callable[[], Any]) -> Any:
        """``make()``, computed once for this head and input size and shared by its other files in
        the same export run: each head is traced and converted once, not once per precision."""
        key = (*key, self.input_size)
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


def _always() -> str | None:
    return None


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str
    layout: str  # of the file's input and output: "NCHW" or "NHWC"
    extra: str  # the pip extra that installs what it needs
    export_modules: tuple[str, ...]  # Python modules its exporter needs
    runtime_module: str  # the module that runs its files
    options: tuple[str, ...]  # keyword options ``export`` accepts beyond the common ones
    # export(job, **options) -> job.path
    export: Callable[..., Path]
    # runner(path, threads) -> (lr_nchw -> sr_nchw): the file loaded once and run as often as needed
    runner: Callable[[Path, int | None], Callable[[np.ndarray], np.ndarray]]
    # session(path, threads, input) -> zero-argument callable running one forward pass on ``input``
    session: Callable[[Path, int, np.ndarray], Callable[[], object]]
    read_metadata: Callable[[Path], dict]
    input_shape: Callable[[Path], list[int]]  # 0 for a dynamic dimension
    # check(path, expectation, precision) -> GraphReport (export.checks)
    check: Callable
    precisions: tuple[str, ...] = ("fp32", "fp16")
    # why files cannot run on this platform at all (None: they can)
    platform_limit: Callable[[], str | None] = _always
    # parity without running, where the format cannot run here: (head, path, precision, files) -> dict
    static_parity: Callable | None = None
    # profile(path, threads, repeats, warmup) -> per-op times (export.profiling.summary); None: none
    profile: Callable[..., dict] | None = None
    # plain(net, path, nchw_shape): a plain fp32 conversion of any NCHW module (models that do not
    # ship, timed beside ours); None: this format converts only PCARN heads
    plain: Callable[[nn.Module, Path, tuple[int, ...]], None] | None = None

    @classmethod
    def from_module(cls, module: ModuleType, **fields) -> ExportFormat:
        """Build a format from a module's conventional names (NAME, SUFFIX, LAYOUT, export,
        runner, timed_session, read_metadata, input_shape and, where defined, platform_limit,
        static_parity, profile and plain); ``fields`` give the rest."""
        names = ("platform_limit", "static_parity", "profile", "plain")
        optional = {k: getattr(module, k) for k in names if hasattr(module, k)}
        return cls(
            name=module.NAME,
            suffix=module.SUFFIX,
            layout=module.LAYOUT,
            export=module.export,
            runner=module.runner,
            session=module.timed_session,
            read_metadata=module.read_metadata,
            input_shape=module.input_shape,
            **optional,
            **fields,
        )

    def missing(self, modules: tuple[str, ...]) -> str | None:
        for module in modules:
            if importlib.util.find_spec(module.split(".")[0]) is None:
                return (
                    f"{module} is not installed; install it with: pip install 'pcarn-toolkit[{self.extra}]'"
                )
        return None

    def available(self) -> tuple[bool, str]:
        """Whether files can be written here, and why not."""
        reason = self.missing(self.export_modules)
        return reason is None, reason or ""

    def runnable(self) -> tuple[bool, str]:
        """Whether files can be run (parity, timing) here, and why not."""
        reason = self.platform_limit() or self.missing((self.runtime_module,))
        return reason is None, reason or ""

    def inspect(self, path: Path) -> tuple[dict, list[int]]:
        """A file's metadata and input shape; a file this format cannot read (corrupt, cut short,
        another format under this suffix) is refused naming the file, with the runtime's chatter
        kept off the terminal."""
        from export.common import native_output_captured

        try:
            with native_output_captured():
                return self.read_metadata(path), self.input_shape(path)
        except PcarnError:
            raise
        except Exception as exc:
            reason = f"{exc}".strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PcarnError(f"{path} is not a readable {self.name} file ({self.suffix}): {reason}") from None

    def file_name(self, variant: str, scale: int, precision: str) -> str:
        return f"{variant}_x{scale}_{precision}{self.suffix}"

    def input_size(self, path: Path) -> tuple[int, int]:
        """(height, width) of a file's LR input."""
        shape = self.input_shape(path)
        return (shape[2], shape[3]) if self.layout == "NCHW" else (shape[1], shape[2])

    def random_input(self, path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
        """A fixed-seed input of the file's own shape; ``size`` fills dynamic height and width."""
        shape = self.input_shape(path)
        if size is not None:
            spatial = (2, 3) if self.layout == "NCHW" else (1, 2)
            for axis, value in zip(spatial, size, strict=True):
                shape[axis] = shape[axis] or value
        if 0 in shape:
            raise PcarnError(f"{path} has a dynamic input shape {shape}: give an input size")
        return np.random.default_rng(0).random(shape, dtype=np.float32)

    def timer(self, path: Path, threads: int, size: tuple[int, int] | None = None) -> Callable[[], object]:
        """One forward pass of the file in its runtime, ready to time; FormatUnavailable if it cannot run."""
        ok, reason = self.runnable()
        if not ok:
            raise FormatUnavailable(reason)
        return self.session(path, threads, self.random_input(path, size))
