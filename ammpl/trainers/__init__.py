"""Every method module of this package, imported so that its trainer and its config node
register themselves (TRAINER_REGISTRY, register_cfg_extension)."""

from __future__ import annotations

import importlib
import pkgutil

_NOT_METHODS = {"param_counts"}  # a command-line tool, run with `python -m`

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _NOT_METHODS:
        importlib.import_module(f"{__name__}.{_module.name}")
