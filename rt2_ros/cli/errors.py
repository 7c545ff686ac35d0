"""Errors shared by the CLI subcommands."""


class UsageError(Exception):
    """A user mistake: printed as one line on stderr with exit status 2, never a traceback."""
