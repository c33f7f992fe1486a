"""The one exception type the CLI turns into a single clear line on stderr."""


class PcarnError(Exception):
    """A user-facing problem: bad input, bad file, missing dependency. The message says what to do."""


def check_names(names, allowed, what: str) -> list[str]:
    """Refuse an unknown or repeated name before any work, in one line that lists the choices."""
    names = list(names)
    for index, name in enumerate(names):
        if name not in allowed:
            raise PcarnError(f"unknown {what} {name!r}; choose from {', '.join(allowed)}")
        if name in names[:index]:
            raise PcarnError(f"{what} {name!r} is named twice")
    return names
