"""The exporter interface: what one file format must provide to the pipeline, the checks, parity,
``pcarn bench``, ``pcarn profile`` and ``pcarn deploy``.

A format is one package whose ``__init__`` declares one :class:`ExportFormat`; ``export/formats.py``
lists them. The rest of the toolkit never asks which format it holds: it calls these fields. The
declaration names its functions (``Lazy``) instead of importing them, so reading the table (the CLI's
choices and help) costs no torch or converter import; each module is imported at its first call.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import PcarnError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn


class FormatUnavailable(PcarnError):
    """This format cannot export or run here; the message says why."""


@dataclass(frozen=True)
class Lazy:
    """A function named by its module and attribute, imported at its first call."""

    module: str
    attribute: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def resolve(self) -> Callable:
        """The function; a dotted ``attribute`` reads through an object (``VULKAN.export``)."""
        return functools.reduce(getattr, self.attribute.split("."), importlib.import_module(self.module))

    @classmethod
    def named(cls, reference: str) -> Lazy:
        """``"package.module:function"``."""
        module, _, attribute = reference.partition(":")
        return cls(module, attribute)


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
    precisions: tuple[str, ...] = ("fp32", "fp16")  # written unless precisions are named
    extra_precisions: tuple[str, ...] = ()  # written only when named (--precision)
    # why files cannot run on this platform at all (None: they can)
    platform_limit: Callable[[], str | None] = _always
    # parity without running, where the format cannot run here: (head, path, precision, files) -> dict
    static_parity: Callable | None = None
    # profile(path, threads, repeats, warmup) -> per-op times (export.profiling.summary); None: none
    profile: Callable[..., dict] | None = None
    # plain(net, path, nchw_shape): a plain fp32 conversion of any NCHW module (models that do not
    # ship, timed beside ours); None: this format converts only PCARN heads
    plain: Callable[[nn.Module, Path, tuple[int, ...]], None] | None = None
    # accelerators(path, precision) -> {target: export.accelerators.Verdict}; None: not reported
    accelerators: Callable[[Path, str], dict] | None = None
    default: bool = True  # written by a plain ``pcarn export`` and ``pcarn deploy``; False: when named

    @classmethod
    def declare(
        cls,
        module: str,
        *,
        has: tuple[str, ...] = (),
        check: str,
        profile: str | None = None,
        accelerators: str | None = None,
        **fields,
    ):
        """A format whose exporter module ``module`` (or an object in it, ``"module:OBJECT"``) defines
        ``export``, ``runner``, ``timed_session``, ``read_metadata``, ``input_shape`` and those of
        ``platform_limit``, ``static_parity`` and ``plain`` that ``has`` names; ``check``, ``profile``
        and ``accelerators`` are ``"module:function"``; ``fields`` give the rest. Nothing is imported
        here."""
        module, _, owner = module.partition(":")
        prefix = f"{owner}." if owner else ""
        unknown = set(has) - {"platform_limit", "static_parity", "plain"}
        if unknown:
            raise ValueError(f"unknown optional exporter functions {sorted(unknown)}")
        return cls(
            export=Lazy(module, prefix + "export"),
            runner=Lazy(module, prefix + "runner"),
            session=Lazy(module, prefix + "timed_session"),
            read_metadata=Lazy(module, prefix + "read_metadata"),
            input_shape=Lazy(module, prefix + "input_shape"),
            check=Lazy.named(check),
            profile=None if profile is None else Lazy.named(profile),
            accelerators=None if accelerators is None else Lazy.named(accelerators),
            **{name: Lazy(module, prefix + name) for name in has},
            **fields,
        )

    def functions(self) -> dict[str, Callable]:
        """Every function the declaration names (a test resolves each one)."""
        names = ("export", "runner", "session", "read_metadata", "input_shape", "check", "profile")
        names += ("platform_limit", "static_parity", "plain", "accelerators")
        return {n: getattr(self, n) for n in names if isinstance(getattr(self, n), Lazy)}

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

    def takes(self, precision: str) -> bool:
        return precision in self.precisions or precision in self.extra_precisions

    def file_name(self, variant: str, scale: int, precision: str) -> str:
        return f"{variant}_x{scale}_{precision}{self.suffix}"

    def _spatial_axes(self, metadata: dict) -> tuple[int, int]:
        """Where height and width are in a file's input shape, from its metadata (an image file's
        is NHWC; Core ML reports its image input as NCHW)."""
        return (1, 2) if metadata.get("input_layout", self.layout) == "NHWC" else (2, 3)

    def input_size(self, path: Path) -> tuple[int, int]:
        """(height, width) of a file's LR input."""
        shape = self.input_shape(path)
        h, w = self._spatial_axes(self.read_metadata(path))
        return shape[h], shape[w]

    def random_input(self, path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
        """A fixed-seed input of the file's own shape and type (an image file's: uint8 pixels);
        ``size`` fills dynamic height and width."""
        import numpy as np

        shape = self.input_shape(path)
        metadata = self.read_metadata(path)
        spatial = self._spatial_axes(metadata)
        if size is not None:
            bounded = "dynamic" in metadata  # any size up to the stored one
            for axis, value in zip(spatial, size, strict=True):
                if bounded and shape[axis] and value > shape[axis]:
                    raise PcarnError(
                        f"{path} takes inputs up to {shape[2:]} (its --dynamic bound), not {size}"
                    )
                shape[axis] = value if bounded else shape[axis] or value
        if 0 in shape:
            raise PcarnError(f"{path} has a dynamic input shape {shape}: give an input size")
        if metadata.get("io") == "image":  # pixels, NHWC (Core ML describes its image input as NCHW)
            h, w = spatial
            return np.random.default_rng(0).integers(0, 256, (1, shape[h], shape[w], 3), dtype=np.uint8)
        return np.random.default_rng(0).random(shape, dtype=np.float32)

    def timer(self, path: Path, threads: int, size: tuple[int, int] | None = None) -> Callable[[], object]:
        """One forward pass of the file in its runtime, ready to time; FormatUnavailable if it cannot run."""
        ok, reason = self.runnable()
        if not ok:
            raise FormatUnavailable(reason)
        return self.session(path, threads, self.random_input(path, size))
