"""One-line errors in a CoOp fork's own `train.py`, which has no error handling of ours.

`register_ammpl_trainers()` installs a `sys.excepthook` that turns two kinds of uncaught
exception into one `error: …` line on stderr (set AMMPL_DEBUG=1 for the traceback):

- our own `AmmplError`s (bad option values, missing weights or data, ...);
- yacs' "Non-existent config key" for one of ammpl's keys (`TRAINER.AMMPL.*`,
  `MODEL.BACKBONE.PATH`, ...), which is what a fork raises while merging one of our method
  configs when its `extend_cfg` lacks the `ammpl_extend_cfg(cfg)` line. The error names
  that line.

Every other exception goes to the previous hook unchanged.
"""

from __future__ import annotations

import os
import re
import sys
from types import TracebackType

__all__ = ["REQUIRED_KEYS", "explain", "install_error_hook"]

# The keys beyond Dassl's that ammpl's trainers read; `ammpl.integrations.dassl.extend_cfg`
# adds them (defined here, below that module, which imports this one).
REQUIRED_KEYS = ("MODEL.BACKBONE.PATH", "MODEL.BACKBONE.ALLOW_TINY_FALLBACK")

MISSING_KEY = re.compile(r"Non-existent (?:config )?key: (\S+)")
EXTEND_LINE = (
    "add `from ammpl.integrations.dassl import extend_cfg as ammpl_extend_cfg` and "
    "`ammpl_extend_cfg(cfg)` at the end of your train.py's extend_cfg(cfg) (docs/DASSL.md)"
)


def _ours(key: str) -> bool:
    """Is `key` one that only ammpl's `extend_cfg` adds to a Dassl config?"""
    import ammpl.trainers  # noqa: F401  (registers every method's config node)
    from ammpl.engine import get_cfg_default

    if key in REQUIRED_KEYS:
        return True
    parts = key.split(".")
    return len(parts) >= 2 and parts[0] == "TRAINER" and parts[1] in get_cfg_default().TRAINER


def explain(error: BaseException) -> str | None:
    """The one line for `error`, or None when it is not ours to explain."""
    from ammpl.utils import AmmplError

    if isinstance(error, AmmplError):
        return str(error)
    if isinstance(error, (KeyError, AssertionError)) and error.args:
        found = MISSING_KEY.search(str(error.args[0]))
        if found and _ours(found.group(1)):
            return f"the config has no key {found.group(1)}, which ammpl adds: {EXTEND_LINE}"
    return None


def install_error_hook() -> None:
    """Wrap `sys.excepthook` once (idempotent)."""
    previous = sys.excepthook
    if getattr(previous, "ammpl_hook", False):
        return

    def hook(exc_type: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        line = None if os.environ.get("AMMPL_DEBUG") else explain(error)
        if line is None:
            previous(exc_type, error, tb)
            return
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        print(f"error: {line}", file=sys.stderr)

    hook.ammpl_hook = True  # type: ignore[attr-defined]
    sys.excepthook = hook
