"""User-facing errors.

Anything a user can fix (a wrong name, a missing file, a typo in a config key) raises a
subclass of AmmplError with a one-line message saying what was expected and where.
Command-line entry points print that line and exit with code 2 (a traceback only with
--debug); library users catch AmmplError.
"""


class AmmplError(Exception):
    """A problem with the user's input, reported as one actionable line."""

    exit_code = 2


class ConfigError(AmmplError, KeyError):
    """Unknown or invalid configuration key / value / file."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DataError(AmmplError):
    """Missing or broken dataset files, undecodable images, bad split files."""


class BackboneError(AmmplError):
    """Unknown backbone name, or weights that cannot be found or read."""


class CheckpointError(AmmplError):
    """Missing, corrupt or mismatched checkpoint."""
