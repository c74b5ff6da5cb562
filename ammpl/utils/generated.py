"""Datasets that are generated, not downloaded (the Shapes demo set, the mini benchmark).

One rule for all of them: a dataset folder either does not exist or is complete. It is
built in a temporary sibling folder and renamed into place, so an interrupted build leaves
nothing half-written behind, and a run that loses a race keeps the winner's copy. In
`ammpl.utils` because both `ammpl.data` (Shapes) and `ammpl.mini`, below data, build with it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

from ammpl.utils.errors import DataError


def ensure_generated(
    root: str,
    folder: str,
    split_file: str,
    generate: Callable[[str], None],
    what: str,
    regenerate_hint: str = "remove the folder to regenerate it",
    root_hint: str = "set --root or DATASET.ROOT to a writable folder",
) -> tuple[str, bool]:
    """`<root>/<folder>`, built by `generate(tmp_dir)` first when absent; and whether it was.

    A folder without its split file is an error (never silently overwritten); `what` names
    the dataset in messages ("the mini benchmark", "the Shapes dataset").
    """
    dataset_dir = os.path.join(root, folder)
    split_path = os.path.join(dataset_dir, split_file)
    if os.path.isfile(split_path):
        return dataset_dir, False
    if os.path.isdir(dataset_dir):
        raise DataError(f"'{dataset_dir}' exists but has no {split_file}; {regenerate_hint}")
    try:
        os.makedirs(root, exist_ok=True)
        tmp_dir = tempfile.mkdtemp(prefix=f".{folder}-", dir=root)
    except OSError as exc:
        raise DataError(
            f"Cannot create {what} under '{root}': {exc.strerror} ({root_hint})"
        ) from None
    try:
        generate(tmp_dir)
        try:
            os.rename(tmp_dir, dataset_dir)
        except OSError:
            if not os.path.isfile(split_path):  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return dataset_dir, True
