"""Leaf utilities shared by every sub-package (no imports from the rest of ammpl)."""

from ammpl.utils.errors import (
    AmmplError,
    BackboneError,
    CheckpointError,
    ConfigError,
    DataError,
)
from ammpl.utils.io import (
    atomic_write,
    atomic_write_text,
    mkdir_if_missing,
    read_json,
    write_json,
)
from ammpl.utils.registry import Registry, closest_name

__all__ = [
    "AmmplError",
    "BackboneError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Registry",
    "atomic_write",
    "atomic_write_text",
    "closest_name",
    "mkdir_if_missing",
    "read_json",
    "write_json",
]
