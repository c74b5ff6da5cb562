"""The dataset registry (readers register under their class name) and root checks."""

from __future__ import annotations

import os
from typing import Any

from ammpl.utils.errors import ConfigError, DataError
from ammpl.utils.registry import Registry

DATASET_REGISTRY = Registry("Dataset")

ROOT_HOW_TO = "set --root or DATASET.ROOT"


def require_dir(path: str, what: str, how_to_get: str) -> str:
    """`path` if it is a folder, else DataError "<what> '<path>' does not exist (<how>)"."""
    if not os.path.isdir(path):
        raise DataError(f"{what} '{path}' does not exist ({how_to_get})")
    return path


def dataset_root(cfg: Any) -> str:
    """DATASET.ROOT with `~` expanded, made absolute, and required to be a folder.

    Dassl would read an empty root as the current folder and then ask for a download; an
    unset or wrong root is the user's real mistake, so the error names it.
    """
    raw = str(cfg.DATASET.ROOT or "").strip()
    if not raw:
        raise DataError(
            "The dataset root is not set: pass --root /path/to/datasets (the folder holding "
            "the dataset folders) or set DATASET.ROOT"
        )
    root = os.path.abspath(os.path.expanduser(raw))
    if os.path.exists(root) and not os.path.isdir(root):
        raise DataError(f"Dataset root '{root}' is a file, not a folder ({ROOT_HOW_TO})")
    return require_dir(root, "Dataset root", ROOT_HOW_TO)


def check_dataset_folder(cfg: Any) -> None:
    """What building the dataset checks first, without reading it: DATASET.NAME is a
    registered reader and, for a reader that reads from DATASET.ROOT, the root holds its
    folder. A run calls this before it creates its output folder, so a wrong root leaves
    no folder with only log.txt behind."""
    import ammpl.data.datasets  # noqa: F401  (readers register on import)

    reader = DATASET_REGISTRY.get(cfg.DATASET.NAME)
    locate = getattr(reader, "locate", None)
    if locate is not None and not getattr(reader, "generated_on_first_use", False):
        locate(dataset_root(cfg))


def build_dataset(cfg: Any) -> Any:
    """Instantiate the reader named by DATASET.NAME (importing every bundled reader first)."""
    import ammpl.data.datasets  # noqa: F401  (readers register on import)

    name = cfg.DATASET.NAME
    if not name:
        names = ", ".join(sorted(DATASET_REGISTRY.registered_names()))
        raise ConfigError(
            "DATASET.NAME is empty; pass --dataset-config-file configs/datasets/<name>.yaml "
            f"or set DATASET.NAME (registered: {names})"
        )
    if getattr(cfg, "VERBOSE", True):
        print(f"Loading dataset: {name}")
    return DATASET_REGISTRY.get(name)(cfg)
