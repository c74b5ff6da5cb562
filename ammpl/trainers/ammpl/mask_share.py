"""Do a trained AMMPL run's masks fall on background patches? (`ammpl-viz mask-share`)

The keep probabilities come from the run's checkpoints exactly as the mask pictures read
them (`load_mask_history`); the object masks and the statistics from
`ammpl.mini.mask_share`, which defines the rules. Each image meets the mask of the run: the
one shared mask of the generalisable model, or its own class's mask in the class-specific
one (images of classes the run was not trained on are then left out).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ammpl.data.entries import SPLIT_NAMES, Entry, split_file_entries
from ammpl.engine.checkpoint import saved_epochs
from ammpl.mini.mask_share import mask_path, object_dataset_dir, object_fractions, share_statistics
from ammpl.trainers.ammpl.mask_stats import mask_statistics
from ammpl.trainers.ammpl.viz import MODEL_FOLDER, MaskHistory, load_mask_history
from ammpl.utils import ConfigError, DataError

P_STATISTICS = ("keep_mean", "keep_std", "below_half")  # of the whole P, from mask_stats


def _spread(entries: list[Entry], limit: int | None) -> list[Entry]:
    """At most `limit` entries, evenly spread over the list (so over every class)."""
    if limit is None or limit >= len(entries):
        return entries
    if limit < 1:
        raise ConfigError(f"the image limit must be ≥ 1, got {limit}")
    return [entries[i * len(entries) // limit] for i in range(limit)]


def _class_key(name: str) -> str:
    return name.lower().replace("_", " ")


def _mask_rows(history: MaskHistory, entries: list[Entry]) -> tuple[list[Entry], list[int]]:
    """The entries that meet a mask of the run, and the row of the mask each meets."""
    if not history.class_specific:
        return entries, [0] * len(entries)
    rows = {_class_key(name): i for i, name in enumerate(history.classnames)}
    kept = [entry for entry in entries if _class_key(entry.classname) in rows]
    if not kept:
        raise DataError(
            "None of the images belongs to a class of this class-specific AMMPL run "
            f"({', '.join(history.classnames[:5])}{', …' if len(history.classnames) > 5 else ''})"
            ": measure it on the dataset it was trained on"
        )
    return kept, [rows[_class_key(entry.classname)] for entry in kept]


def masked_background_shares(
    model_dir: str | os.PathLike,
    data_root: str | os.PathLike,
    dataset: str,
    split: str = "test",
    epochs: list[int] | None = None,
    limit: int | None = None,
) -> list[dict]:
    """One statistics dict per chosen (default: every saved) epoch of an AMMPL run, on the
    `split` images of the object dataset `dataset` (DATASET.NAME) under `data_root`.

    Each dict holds `epoch`, `dataset`, `split`, the P statistics keep_mean, keep_std and
    below_half (`ammpl.trainers.ammpl.mask_stats`), and the shares of
    `ammpl.mini.mask_share.share_statistics`.
    """
    if split not in SPLIT_NAMES:
        raise ConfigError(f"split must be one of {', '.join(SPLIT_NAMES)}, got '{split}'")
    dataset_dir, split_file = object_dataset_dir(data_root, dataset)
    history = load_mask_history(model_dir, epochs, mode="expected")  # keep = clamp(P, 0, 1)
    grid = history.keep[0].shape[-1]
    if history.image_size % grid:
        raise DataError(
            f"The run's image size {history.image_size} is not a whole number of its "
            f"{grid} × {grid} patches"
        )
    listed = split_file_entries(split_file, os.path.join(dataset_dir, "images"))
    entries = _spread([entry for entry in listed if entry.split == split], limit)
    if not entries:
        raise DataError(f"{split_file} lists no '{split}' images")
    entries, rows = _mask_rows(history, entries)
    paths = [mask_path(dataset_dir, entry.impath) for entry in entries]
    fractions = object_fractions(paths, history.image_size, grid)
    results = []
    for epoch, keep in zip(history.epochs, history.keep):
        P_stats = mask_statistics(keep, None)
        per_image = keep.numpy()[np.asarray(rows)]
        results.append(
            {
                "epoch": epoch,
                "dataset": dataset,
                "split": split,
                **{key: P_stats[key] for key in P_STATISTICS},
                **share_statistics(per_image, fractions),
            }
        )
    return results


def masked_background_share(
    model_dir: str | os.PathLike,
    data_root: str | os.PathLike,
    dataset: str,
    split: str = "test",
    epoch: int | None = None,
    limit: int | None = None,
) -> dict:
    """`masked_background_shares` for one epoch (default: the newest saved one)."""
    if epoch is None:
        saved = saved_epochs(Path(model_dir) / MODEL_FOLDER)
        epoch = saved[-1] if saved else None  # none saved: load_mask_history says so
    chosen = None if epoch is None else [epoch]
    return masked_background_shares(model_dir, data_root, dataset, split, chosen, limit)[-1]


# (header, key, format) of the table columns; shares in %, "—" where undefined.
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("epoch", "epoch", "{}"),
    ("keep mean", "keep_mean", "{:.4f}"),
    ("P<0.5 %", "below_half", "{:.1%}"),
    ("test masked/img", "masked_per_image", "{:.2f}"),
    ("outside (any)", "masked_outside", "{:.1%}"),
    ("chance (any)", "chance_outside", "{:.1%}"),
    ("ratio (any)", "ratio", "{:.2f}"),
    ("outside (≥50%)", "masked_outside_half", "{:.1%}"),
    ("chance (≥50%)", "chance_outside_half", "{:.1%}"),
    ("ratio (≥50%)", "ratio_half", "{:.2f}"),
    ("train masked/img", "expected_masked_per_image", "{:.2f}"),
    ("train outside (any)", "expected_outside", "{:.1%}"),
    ("train ratio (any)", "expected_ratio", "{:.2f}"),
)


def share_table(results: list[dict]) -> str:
    """A Markdown table, one line per epoch, under a line saying what was measured."""
    first = results[0]
    lines = [
        f"{first['dataset']} {first['split']}: {first['images']} images, "
        f"{first['patches_per_image']} patches each. Test mask: P < 0.5; train: Bernoulli "
        "draws in expectation. Object patch: any object pixel (any) or ≥ 50 % object; "
        "outside = share of masked patches that are background, chance = share of all "
        "patches that are, ratio = outside / chance.",
        "",
        "| " + " | ".join(header for header, _, _ in TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
    ]
    for result in results:
        cells = [
            "—" if result[key] is None else fmt.format(result[key]) for _, key, fmt in TABLE_COLUMNS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
