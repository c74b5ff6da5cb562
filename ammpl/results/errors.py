"""The one error type of the results tools (a missing folder, an empty table, a bad CSV)."""

from ammpl.utils.errors import AmmplError


class ResultsError(AmmplError):
    """Output folders or a runs CSV that cannot give the requested numbers."""
