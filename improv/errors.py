"""Errors that the command line turns into a clear message and an exit code."""


class ImprovError(Exception):
    """A failure the user can act on; the CLI prints its message, not a traceback."""

    exit_code = 1


class UsageError(ImprovError):
    """Bad input from the user: a missing folder, a folder without MIDI files, a bad option."""

    exit_code = 2
