"""Which phone accelerator each exported file can run on: a verdict per target, each from a named
rule with its source, so an app developer sees before shipping whether a file stays on the phone's
GPU, NPU or Neural Engine or falls back to the CPU.

Each format answers for its own files (``export/<format>/accelerators.py``, declared in its
``ExportFormat``); the manifest keeps every verdict and ``report.md`` shows them as one table. The
rules are static (read from the file against documented support); nothing here runs on a phone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

TARGETS = {"cpu": "CPU", "mobile_gpu": "mobile GPU", "npu": "NPU", "neural_engine": "Neural Engine"}
STATUSES = ("full", "partial", "none", "not checked", "n/a")


@dataclass
class Verdict:
    status: str  # one of STATUSES: "full" = one partition holding every op
    detail: str  # what was found: partitions, coverage, ranks
    source: str  # the rule's source (a checker, a document, a library's support table)
    unsupported: list[str] = field(default_factory=list)  # ops (or ranks) off the accelerator, by name

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown accelerator status {self.status!r}")

    def as_dict(self) -> dict:
        return asdict(self)


def not_checked(reason: str, source: str = "-") -> Verdict:
    return Verdict("not checked", reason, source)


def table(entries: list[dict]) -> str:
    """Markdown: one row per file, one column per target; a cell is the status and, where something
    falls off the accelerator, what."""
    lines = [
        "| file | " + " | ".join(TARGETS.values()) + " |",
        "|---|" + "---|" * len(TARGETS),
    ]
    for entry in entries:
        verdicts = entry.get("accelerators")
        if not verdicts:
            continue
        cells = []
        for target in TARGETS:
            v = verdicts.get(target)
            if v is None:
                cells.append("-")
                continue
            off = f": {', '.join(v['unsupported'])}" if v["unsupported"] else ""
            cells.append(f"{v['status']}{off}")
        lines.append(f"| {entry['path']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sources(entries: list[dict]) -> list[str]:
    """Every rule source the table's verdicts cite, once each."""
    seen: dict[str, None] = {}
    for entry in entries:
        for v in (entry.get("accelerators") or {}).values():
            seen.setdefault(v["source"], None)
    return [s for s in seen if s != "-"]
