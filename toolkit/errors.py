"""The one exception type the CLI turns into a single clear line on stderr."""


class PcarnError(Exception):
    """A user-facing problem: bad input, bad file, missing dependency. The message says what to do."""
