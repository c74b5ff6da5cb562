"""Every method module of this package, imported so that its trainer and its config node
register themselves (TRAINER_REGISTRY, register_cfg_extension)."""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
