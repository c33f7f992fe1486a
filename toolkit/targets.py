"""The project's targets, read from one data file (``toolkit/targets.json``), so library code states
measured values and reports put a target beside them without hard-coding it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

TARGETS_FILE = Path(__file__).with_name("targets.json")


@cache
def targets(section: str) -> dict:
    """One section of the targets file (``bench``, ``gan_card``)."""
    return json.loads(TARGETS_FILE.read_text())[section]
