"""Dassl's data contract (Datum, DatasetBase, DataManager, transforms), the dataset readers,
the few-shot cache and the built-in Shapes demo set.

Names are resolved lazily so that `import ammpl.data.base` from a reader does not pull in
torch / torchvision through the loaders.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Datum": "ammpl.data.base",
    "DatasetBase": "ammpl.data.base",
    "DATASET_REGISTRY": "ammpl.data.registry",
    "build_dataset": "ammpl.data.registry",
    "DataManager": "ammpl.data.manager",
    "DatasetWrapper": "ammpl.data.manager",
    "build_data_loader": "ammpl.data.manager",
    "build_transform": "ammpl.data.transforms",
    "generate_fewshot_dataset": "ammpl.data.fewshot",
    "split_dataset_by_label": "ammpl.data.fewshot",
    "read_split": "ammpl.data.splits",
    "save_split": "ammpl.data.splits",
    "subsample_classes": "ammpl.data.splits",
    "load_or_create_fewshot": "ammpl.data.fewshot_cache",
    "read_image": "ammpl.data.image_io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ammpl.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
