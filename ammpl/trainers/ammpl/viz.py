"""Mask pictures (paper Figure 3): which patches each class keeps, epoch after epoch.

The masks come from the `P` tensor of saved checkpoints (`<run>/prompt_learner/
model.pth.tar-<epoch>`; save intermediate epochs with TRAIN.CHECKPOINT_FREQ). Rows are
(image, class) pairs labelled by class and by the image's path under the data root (two
`image_0001.jpg` stay apart), columns are epochs; masked patches are darkened and tinted,
and a legend under the grid says what the shading means for the chosen mode.
"""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ammpl.engine.checkpoint import checkpoint_name, load_checkpoint, saved_epochs
from ammpl.engine.run_record import RESULTS_FILE
from ammpl.trainers.ammpl.masks import eval_mask
from ammpl.utils import CheckpointError, ConfigError
from ammpl.utils.framing import centre_frame
from ammpl.utils.io import atomic_write

MODEL_FOLDER = "prompt_learner"
META_FILE = "ammpl_meta.json"  # class names + patch geometry, written beside checkpoints
PICTURE_MODES = ("threshold", "expected", "sample")
MASKED_TINT = np.array([150.0, 20.0, 20.0])
DEFAULT_IMAGE_SIZE = 224
MAX_DEFAULT_CLASSES = 4
LEGEND_MIN_CHARS = 24  # the legend is never wrapped narrower than this


@dataclass
class MaskHistory:
    """Keep values (C, b, b) in [0, 1] per saved epoch, and what they belong to."""

    epochs: list[int]
    keep: list[torch.Tensor]
    classnames: list[str]
    class_specific: bool
    image_size: int


def _read_meta(folder: Path) -> dict:
    path = folder / META_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(
            f"Cannot read {path} ({exc}): the class names of this AMMPL run are lost; "
            "re-run its training to rewrite the file"
        ) from None


def _keep_values(P: torch.Tensor, mode: str, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed) if mode == "sample" else None
    return eval_mask(P.float(), mode, 1, per_image=False, generator=generator)[0]


def load_mask_history(
    model_dir: str | os.PathLike,
    epochs: list[int] | None = None,
    mode: str = "threshold",
    seed: int = 0,
) -> MaskHistory:
    """Masks of the chosen (default: every saved) epoch of an AMMPL training run."""
    if mode not in PICTURE_MODES:
        raise ConfigError(f"mask mode must be one of {', '.join(PICTURE_MODES)}, got '{mode}'")
    folder = Path(model_dir) / MODEL_FOLDER
    available = saved_epochs(folder)
    if not available:
        raise CheckpointError(
            f"No AMMPL checkpoints in {folder}: --model-dir must be the output folder of an "
            "AMMPL training run"
        )
    chosen = list(epochs) if epochs else available
    missing = [e for e in chosen if e not in available]
    if missing:
        trained = trained_epochs(model_dir, available)
        if all(e > trained or e < 1 for e in missing):
            why = f"the run has {trained} epoch{'s' if trained != 1 else ''} (1–{trained})"
        else:
            why = f"the run trained {trained} epochs but kept only some checkpoints"
        raise CheckpointError(
            f"No checkpoint for epoch(s) {missing} in {folder}: {why}; "
            f"saved: {', '.join(map(str, available))} (train with TRAIN.CHECKPOINT_FREQ 1 to "
            "keep every epoch)"
        )
    keep = []
    for epoch in chosen:
        path = folder / checkpoint_name(epoch)
        state = load_checkpoint(path)["state_dict"]
        if "P" not in state:
            raise CheckpointError(
                f"{path} has no patch mask P: the run was not AMMPL, or it used "
                "TRAINER.AMMPL.MASK False"
            )
        keep.append(_keep_values(state["P"], mode, seed))
    meta = _read_meta(folder)
    n_masks = keep[0].shape[0]
    classnames = meta.get("classnames") or [f"class {i}" for i in range(n_masks)]
    class_specific = bool(meta.get("class_specific", keep[0].shape[0] > 1))
    image_size = int(meta.get("image_size") or DEFAULT_IMAGE_SIZE)
    return MaskHistory(chosen, keep, classnames, class_specific, image_size)


def trained_epochs(model_dir: str | os.PathLike, saved: list[int]) -> int:
    """How many epochs the run trained: from its results.json, else its newest checkpoint."""
    try:
        record = json.loads((Path(model_dir) / RESULTS_FILE).read_text())
        recorded = [int(e["epoch"]) for e in record.get("epochs", []) if "epoch" in e]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        recorded = []
    return max(recorded + list(saved))


def image_labels(paths: list[str], root: str | os.PathLike | None = None) -> list[str]:
    """Row labels that tell images apart: paths relative to `root` (the data root) when they
    lie under it, else relative to the images' deepest common folder."""
    absolute = [os.path.abspath(path) for path in paths]
    if root:
        base = os.path.abspath(root)
        if all(os.path.commonpath([base, path]) == base for path in absolute):
            return [os.path.relpath(path, base) for path in absolute]
    if len(absolute) < 2:
        return [os.path.basename(path) for path in absolute]
    base = os.path.commonpath([os.path.dirname(path) for path in absolute])
    return [os.path.relpath(path, base) for path in absolute]


def legend_text(mode: str) -> str:
    """What the shading means for `mode` (drawn under the grid)."""
    meaning = {
        "threshold": "patches the test mask hides (keep probability P < 0.5)",
        "expected": "darker and redder in proportion to 1 − P (the chance a patch is masked)",
        "sample": "patches masked in one Bernoulli(P) draw",
    }[mode]
    return f"red shading: {meaning}; unshaded: kept patches"


def select_classes(history: MaskHistory, requested: list[str] | None) -> list[int]:
    """Indices into the mask's class axis: by name or index; default the first few.

    The generalisable model has one mask for every class: index 0.
    """
    if not history.class_specific:
        return [0]
    if not requested:
        return list(range(min(MAX_DEFAULT_CLASSES, len(history.classnames))))
    lowered = {name.lower(): i for i, name in enumerate(history.classnames)}
    indices = []
    for item in requested:
        if item.isdigit() and int(item) < len(history.classnames):
            indices.append(int(item))
        elif item.lower().replace("_", " ") in lowered:
            indices.append(lowered[item.lower().replace("_", " ")])
        else:
            shown = ", ".join(history.classnames[:10])
            raise ConfigError(
                f"Unknown class '{item}' for --classes; pass a class name or index "
                f"(classes: {shown}{', …' if len(history.classnames) > 10 else ''})"
            )
    return indices


def load_picture(path: str | os.PathLike, size: int) -> np.ndarray:
    """The image as the test transform frames it: shorter side resized to `size`, centre crop."""
    from PIL import Image

    from ammpl.data.image_io import read_image

    image = read_image(path)
    frame = centre_frame(*image.size, size)
    image = image.resize((frame.width, frame.height), Image.BICUBIC)
    box = (frame.left, frame.top, frame.left + size, frame.top + size)
    return np.asarray(image.crop(box), dtype=np.float64)


def shade(image: np.ndarray, keep: torch.Tensor) -> np.ndarray:
    """Masked patches darkened and tinted, in proportion to 1 − keep."""
    size = image.shape[0]
    grid = keep.shape[-1]
    patch = size // grid
    pixels = np.kron(keep.numpy(), np.ones((patch, patch)))
    pixels = np.pad(pixels, ((0, size - pixels.shape[0]), (0, size - pixels.shape[1])), "edge")
    weight = pixels[..., None]
    masked = 0.35 * image + 0.65 * MASKED_TINT
    return np.clip(weight * image + (1 - weight) * masked, 0, 255).astype(np.uint8)


def add_fitted_legend(fig, handle, mode: str, fontsize: float = 7) -> float:
    """The legend under the grid, its text wrapped until it fits the figure's width (a
    one-column figure is narrower than the sentence); returns its height as a fraction of
    the figure's."""
    text = legend_text(mode)
    renderer = fig.canvas.get_renderer()
    limit = 0.96 * fig.bbox.width
    width = len(text)
    while True:
        handle.set_label(textwrap.fill(text, width))
        legend = fig.legend(handles=[handle], loc="lower center", fontsize=fontsize, frameon=False)
        box = legend.get_window_extent(renderer)
        if box.width <= limit or width <= LEGEND_MIN_CHARS:
            return box.height / fig.bbox.height
        legend.remove()
        width -= 4


def render_mask_grid(
    images: list[np.ndarray],
    image_names: list[str],
    history: MaskHistory,
    class_indices: list[int],
    out: str | os.PathLike,
    mode: str = "threshold",
) -> Path:
    """Write the PNG grid: one row per (image, class), one column per epoch, a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = [(i, c) for i in range(len(images)) for c in class_indices]
    n_cols = len(history.epochs)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(1.9 * n_cols + 1.6, 1.9 * len(rows) + 0.4), squeeze=False
    )
    for r, (image_index, class_index) in enumerate(rows):
        for c, epoch in enumerate(history.epochs):
            ax = axes[r][c]
            ax.imshow(shade(images[image_index], history.keep[c][class_index]))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"epoch {epoch}", fontsize=9)
        if history.class_specific:
            who = f"class: {history.classnames[class_index]}"
        else:
            who = "all classes (one mask)"
        axes[r][0].set_ylabel(f"{who}\n{image_names[image_index]}", fontsize=7)
    masked = np.clip((0.35 * 128 + 0.65 * MASKED_TINT) / 255, 0, 1)
    legend_height = add_fitted_legend(fig, Patch(facecolor=masked, edgecolor="gray"), mode)
    fig.tight_layout(rect=(0, legend_height + 0.01, 1, 1))
    out = Path(out)
    with atomic_write(out, "wb") as handle:  # creates the folder; never a half-written PNG
        fig.savefig(handle, dpi=100, format="png")
    plt.close(fig)
    return out


def mask_picture(
    model_dir: str | os.PathLike,
    image_paths: list[str],
    out: str | os.PathLike,
    epochs: list[int] | None = None,
    classes: list[str] | None = None,
    mode: str = "threshold",
    seed: int = 0,
    root: str | os.PathLike | None = None,
) -> Path:
    """Load the masks, frame the images and write the grid (what `ammpl-viz masks` does).

    `root`: the data root, so that rows are labelled by the image's path under it.
    """
    history = load_mask_history(model_dir, epochs, mode, seed)
    class_indices = select_classes(history, classes)
    if history.class_specific and not classes:
        drawn = ", ".join(f"{i} {history.classnames[i]}" for i in class_indices)
        print(
            f"Drew the first {len(class_indices)} of {len(history.classnames)} classes "
            f"({drawn}); choose others with --classes NAME|INDEX …"
        )
    images = [load_picture(path, history.image_size) for path in image_paths]
    names = image_labels(image_paths, root)
    return render_mask_grid(images, names, history, class_indices, out, mode)
