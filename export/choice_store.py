"""Mixed-precision choices and calibrated ranges kept across runs, so a head's search and its
calibration run once, not in every export.

The choice of what an int8 file keeps wider (``export/mixed.py``) is most of an int8 export's time
(pcarn-m x2 TFLite: 349 of 550 s) and a pure function of what it was made from: the head's weights,
the format and its graph form, the budget, the calibration photos, the rules of the search and the
libraries that ran it. A store files each choice under a digest of all of those, so a later run
with the same inputs reuses it and writes the same file, while any change (other photos, another
budget, retrained weights, a new onnxruntime) misses and searches again. The file is still
calibrated, checked and measured on the validation photos as usual: only the search is skipped.

Calibration, most of what is left, is kept the same way (``export/kept_ranges.py``): the activation
ranges are filed under a digest of the observed graph (weights included) and the calibration crops.

``models/int8-choices.json`` ships the choices and ranges of the shipped models for ``pcarn
deploy``'s defaults (a fresh clone's calibration photos); ``pcarn export --int8-choices FILE`` keeps
a user's own.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np

from export.mixed import SAFETY, SELECT_SAMPLES, SELECT_SIZE, WEIGHT_SHARE, WideChoice
from toolkit.atomic import atomic_path
from toolkit.calibration import CalibrationSet
from toolkit.data import HELD_OUT_LONG_SIDE
from toolkit.errors import PcarnError
from toolkit.weights.checkpoint import weights_sha256
from toolkit.weights.registry import SHIPPED_DIR

SHIPPED = SHIPPED_DIR / "int8-choices.json"
# Raise when the search changes in a way the constants below do not show, so old choices miss.
RULES_VERSION = 1
RANGES_VERSION = 1  # raise when kept ranges change meaning (export/kept_ranges.py)
# What ran the search: another version of any of them may choose differently.
LIBRARIES = (
    "torch",
    "torchao",
    "onnx",
    "onnxruntime",
    "onnxsim",
    "litert-torch",
    "ai-edge-litert",
    "executorch",
)


class ChoiceStore:
    """Choices read from ``read`` files (missing ones are empty) and, when ``write`` is given, new
    choices added to it as they are made (atomically, so a cut run keeps the ones it finished)."""

    def __init__(self, read: list[Path], write: Path | None = None) -> None:
        self.write = write
        # what ``write`` holds and gains: choices, then ranges
        self.own, self.own_ranges = _load(write) if write else ({}, {})
        self.entries: dict[str, dict] = {}
        self.ranges: dict[str, dict] = {}
        for path in read:
            entries, ranges = _load(path)
            self.entries.update(entries)
            self.ranges.update(ranges)
        self.entries.update(self.own)
        self.ranges.update(self.own_ranges)
        self.recalled: set[Path] = set()  # the files whose choice came from the store in this run
        self.ranges_recalled: set[Path] = set()  # the files whose calibration did
        self._fingerprints: dict[int, str] = {}

    @classmethod
    def shipped(cls, extra: Path | None = None) -> ChoiceStore:
        """The shipped choices, plus ``extra`` (read and added to) where given."""
        return cls([SHIPPED], extra)

    def recall(self, job, key: tuple, make: Callable[[], WideChoice]) -> WideChoice:
        """The choice filed under ``job``'s inputs and ``key`` (the exporter's name for the choice:
        format, graph form, budget); else ``make()``, filed when this store writes."""
        described = self.describe(job, key)
        digest = key_digest(described)
        if digest in self.entries:
            self.recalled.add(job.path)
            return _choice(self.entries[digest]["choice"])
        choice = make()
        entry = {"key": described, "choice": asdict(choice), "made": time.strftime("%Y-%m-%d")}
        self.entries[digest] = self.own[digest] = entry
        if self.write is not None:
            self._save()
        return choice

    def recall_ranges(self, path: Path, key: tuple, measure: Callable[[], dict]) -> dict:
        """The ranges filed under ``key`` (the calibrator's name for its graph and inputs, digests
        included) and this environment's libraries; else ``measure()``'s, filed when this store
        writes. ``path``: the file they are for."""
        described = {"ranges": repr(key), "version": RANGES_VERSION, "libraries": library_versions()}
        digest = key_digest(described)
        if digest in self.ranges:
            self.ranges_recalled.add(path)
            return self.ranges[digest]["ranges"]
        ranges = measure()
        entry = {"key": described, "ranges": ranges, "made": time.strftime("%Y-%m-%d")}
        self.ranges[digest] = self.own_ranges[digest] = entry
        if self.write is not None:
            self._save()
        return ranges

    def describe(self, job, key: tuple) -> dict:
        """Everything a choice depends on, readable (the digest of it files the choice)."""
        size = (min(SELECT_SIZE[0], job.input_size[0]), min(SELECT_SIZE[1], job.input_size[1]))
        return {
            "choice": repr(key),
            "scale": int(job.metadata["scale"]),
            "weights_sha256": weights_sha256(job.head),
            "calibration": {"photos": self._calibration(job.calibration), "samples": job.calib_samples},
            "selection": {"size": list(size), "samples": SELECT_SAMPLES, "long_side": HELD_OUT_LONG_SIDE},
            "rules": {"version": RULES_VERSION, "safety": SAFETY, "weight_share": WEIGHT_SHARE},
            "libraries": library_versions(),
        }

    def _calibration(self, calibration: CalibrationSet | None) -> str | None:
        if calibration is None:
            return None
        if id(calibration) not in self._fingerprints:
            self._fingerprints[id(calibration)] = photos_digest(calibration)
        return self._fingerprints[id(calibration)]

    def _save(self) -> None:
        # another process (deploy exports models in parallel) may have added entries meanwhile
        entries, ranges = _load(self.write)
        self.own, self.own_ranges = {**entries, **self.own}, {**ranges, **self.own_ranges}
        with atomic_path(self.write) as tmp:
            tmp.write_text(_document(self.own, self.own_ranges))


def key_digest(described: dict) -> str:
    """What an entry is filed under: sha256 of its readable key (choices and ranges alike)."""
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def _document(entries: dict[str, dict], ranges: dict[str, dict]) -> str:
    """The store file: choices indented, each head's ranges on one line (hundreds of numbers)."""
    head = {
        "what": "int8 mixed-precision choices and calibrated activation ranges (export/choice_store.py), "
        "each filed by a digest of what it was made from",
        "entries": dict(sorted(entries.items())),
    }
    lines = [f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in sorted(ranges.items())]
    body = "{\n" + ",\n".join(lines) + "\n }" if lines else "{}"
    return json.dumps(head, indent=1).removesuffix("\n}") + f',\n "ranges": {body}\n}}\n'


def photos_digest(calibration: CalibrationSet) -> str:
    """sha256 of the calibration photos' bytes (files as stored, arrays as pixels), in order."""
    digest = hashlib.sha256()
    for photo in calibration.photos:
        is_array = isinstance(photo, np.ndarray)
        data = np.ascontiguousarray(photo).tobytes() if is_array else Path(photo).read_bytes()
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _choice(stored: dict) -> WideChoice:
    return WideChoice(
        wide=tuple(stored["wide"]),
        activations=int(stored["activations"]),
        predicted_cost_db=float(stored["predicted_cost_db"]),
        all_int8_cost_db=float(stored["all_int8_cost_db"]),
        kept_as=stored["kept_as"],
        float_weights=tuple(stored["float_weights"]),
        float_activations=tuple(stored.get("float_activations", ())),
    )


def _load(path: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """A store file's choices and ranges (a file from before ranges were kept has none)."""
    if not path.is_file():
        return {}, {}
    try:
        document = json.loads(path.read_text())
        entries, ranges = document["entries"], document.get("ranges", {})
        for entry in entries.values():
            _choice(entry["choice"])
        if not all(isinstance(entry["ranges"], dict) for entry in ranges.values()):
            raise TypeError("ranges entries must hold objects")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PcarnError(f"{path} is not an int8 choices file ({type(exc).__name__}: {exc})") from None
    return entries, ranges
