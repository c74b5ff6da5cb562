"""Do AMMPL's patch masks fall on the background? The object side of the measurement.

The object datasets store, beside each image, the pixels of the visible object
(`masks/<class>/<n>.png`, white = object). A patch of the model's input grid counts as
*object* under one of two rules, and as background otherwise:

- "any": at least one object pixel lies in it. Masking such a patch hides part of the object,
  so under this rule "outside" means pure background — the strict reading of "the mask
  falls on the background", and the headline number;
- "half": at least half of its area is object. Patches that only graze the object's edge
  count as background; reported beside "any" because an object's outline crosses many patches
  of a coarse grid, and the two rules bracket the answer.

`share_statistics` compares where the mask hides patches with where a mask of the same size
placed at random would: `chance_outside` is the share of ALL patches outside the object.
Patch shares are exact areas: each patch's footprint is taken back through the test
transform's resize and centre crop (`ammpl.utils.framing`) onto the mask's own pixels.
"""

from __future__ import annotations

import os

import numpy as np

from ammpl.mini.benchmark import MASK_DIR, MINI_DATASETS
from ammpl.utils.errors import DataError
from ammpl.utils.framing import centre_frame

OBJECT_RULES: tuple[str, ...] = ("any", "half")
HALF = 0.5
_NEGLIGIBLE = 1e-9  # overlaps this small are rounding, not pixels
MISSING_SHOWN = 3


def object_dataset_names() -> list[str]:
    """The mini datasets that store object masks."""
    return [name for name, spec in MINI_DATASETS.items() if spec.photo is not None]


def object_dataset_dir(data_root: str | os.PathLike, dataset: str) -> tuple[str, str]:
    """(dataset folder, split file) of the object dataset `dataset` (DATASET.NAME) under
    `data_root` (the data root or the dataset folder itself); one-line DataError otherwise."""
    spec = MINI_DATASETS.get(dataset)
    if spec is None or spec.photo is None:
        raise DataError(
            f"{dataset} has no object masks: only the mini object datasets store them "
            f"({', '.join(object_dataset_names())})"
        )
    root = os.fspath(data_root)
    for folder in (os.path.join(root, spec.folder), root):
        if os.path.isfile(os.path.join(folder, spec.split_file)):
            break
    else:
        raise DataError(
            f"No {spec.split_file} in {root} or {os.path.join(root, spec.folder)}: build the "
            f"data with `ammpl-data mini --root {root} {dataset}`"
        )
    if not os.path.isdir(os.path.join(folder, MASK_DIR)):
        raise DataError(
            f"{folder} has no {MASK_DIR}/ folder of object masks: rebuild it with "
            f"`ammpl-data mini --root DATA {dataset}` (remove the folder first)"
        )
    return folder, os.path.join(folder, spec.split_file)


def mask_path(dataset_dir: str, image_path: str) -> str:
    """The object mask of an image under `<dataset_dir>/images/`."""
    relative = os.path.relpath(image_path, os.path.join(dataset_dir, "images"))
    return os.path.join(dataset_dir, MASK_DIR, relative)


def _overlaps(edges: np.ndarray, pixels: int) -> np.ndarray:
    """(len(edges) − 1, pixels): length of [edges[i], edges[i+1]) ∩ [j, j + 1) per pixel j."""
    j = np.arange(pixels)
    low = np.maximum(edges[:-1, None], j[None])
    high = np.minimum(edges[1:, None], j[None] + 1)
    lengths = np.clip(high - low, 0.0, None)
    lengths[lengths < _NEGLIGIBLE] = 0.0
    return lengths


def patch_object_fractions(mask: np.ndarray, image_size: int, grid: int) -> np.ndarray:
    """(grid, grid) share of each patch's area that is object, for an (H, W) 0/1 `mask`
    framed like the image (shorter side to `image_size`, centre crop, `grid` patches a side)."""
    height, width = mask.shape
    frame = centre_frame(width, height, image_size)
    steps = np.arange(grid + 1) * (image_size / grid)
    columns = _overlaps((frame.left + steps) * width / frame.width, width)
    rows = _overlaps((frame.top + steps) * height / frame.height, height)
    covered = rows @ mask.astype(np.float64) @ columns.T
    area = rows.sum(1)[:, None] * columns.sum(1)[None]
    return covered / area


def read_object_mask(path: str) -> np.ndarray:
    """(H, W) 0/1 float array of the object's pixels; DataError naming an unreadable file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return (np.asarray(image.convert("L")) > 127).astype(np.float64)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"Cannot read object mask {path}: {exc}") from None


def object_fractions(paths: list[str], image_size: int, grid: int) -> np.ndarray:
    """(N, grid, grid) object share per patch of every mask in `paths`; missing masks are
    reported together in one line."""
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        shown = ", ".join(missing[:MISSING_SHOWN]) + (", …" if len(missing) > MISSING_SHOWN else "")
        raise DataError(
            f"{len(missing)} of {len(paths)} object masks are missing: {shown} (rebuild the "
            "dataset with `ammpl-data mini`)"
        )
    return np.stack([patch_object_fractions(read_object_mask(p), image_size, grid) for p in paths])


def outside_object(fractions: np.ndarray, rule: str) -> np.ndarray:
    """Boolean array: which patches are background under `rule` ("any" or "half")."""
    if rule == "any":
        return fractions <= _NEGLIGIBLE
    if rule == "half":
        return fractions < HALF
    raise ValueError(f"unknown object rule {rule!r}; expected one of {OBJECT_RULES}")


def _share(weight: np.ndarray, outside: np.ndarray) -> float | None:
    total = float(weight.sum())
    return None if total == 0 else float((weight * outside).sum()) / total


def _ratio(share: float | None, chance: float) -> float | None:
    return None if share is None or chance == 0 else share / chance


def share_statistics(keep: np.ndarray, fractions: np.ndarray) -> dict:
    """Where the mask hides patches, against chance.

    keep: (N, b, b) keep probabilities in [0, 1] of the mask each image meets; the test mask
    hides the patches with keep < 0.5, a training draw hides each with probability 1 − keep.
    fractions: (N, b, b) object share per patch (`object_fractions`).

    Returned, per image: `masked_per_image` (test mask, mean), `images_without_masked`;
    `expected_masked_per_image` (training draws). Per rule (no suffix: "any", `_half`:
    "half"): `masked_outside`, the share of the test mask's hidden patches that are
    background (pooled over images; None when it hides nothing); `chance_outside`, the share
    of all patches that are background; `ratio` = masked_outside / chance_outside;
    `expected_outside` and `expected_ratio`, the same for training draws in expectation.
    """
    masked = (keep < 0.5).astype(np.float64)
    expected = 1.0 - keep.astype(np.float64)
    per_image = masked.reshape(len(masked), -1).sum(1)
    stats: dict = {
        "images": int(len(keep)),
        "patches_per_image": int(keep[0].size),
        "masked_per_image": float(per_image.mean()),
        "images_without_masked": int((per_image == 0).sum()),
        "expected_masked_per_image": float(expected.reshape(len(keep), -1).sum(1).mean()),
    }
    for rule in OBJECT_RULES:
        suffix = "" if rule == "any" else f"_{rule}"
        outside = outside_object(fractions, rule)
        chance = float(outside.mean())
        share = _share(masked, outside)
        expected_share = _share(expected, outside)
        stats.update(
            {
                f"masked_outside{suffix}": share,
                f"chance_outside{suffix}": chance,
                f"ratio{suffix}": _ratio(share, chance),
                f"expected_outside{suffix}": expected_share,
                f"expected_ratio{suffix}": _ratio(expected_share, chance),
            }
        )
    return stats
