"""Optional exporter dependencies: a missing one becomes one clear error naming the extra, which
the format table (each format's ``extra``, ``export_modules`` and ``runtime_module``) knows."""

from __future__ import annotations

import importlib
from types import ModuleType

from toolkit.errors import PcarnError


def extra_for(module: str) -> str:
    """The pip extra that installs ``module``: the extra of the format that needs it, else ``all``."""
    from export.formats import FORMATS  # here, not above: the table imports the format packages

    top = module.split(".")[0]
    for fmt in FORMATS.values():
        if top in {m.split(".")[0] for m in (*fmt.export_modules, fmt.runtime_module)}:
            return fmt.extra
    return "all"


def require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = extra_for(module)
        raise PcarnError(
            f"{module} is not installed ({exc}); install it with: pip install 'pcarn-toolkit[{extra}]'"
        ) from None
