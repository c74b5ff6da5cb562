"""Shapes: a built-in 4-class demo set, generated on first use, laid out like the benchmarks.

96×96 PNGs of a circle, square, triangle or star (random size, position, rotation) over
cluttered greyish backgrounds (noise, small coloured blobs, thin lines), so that most image
patches carry no class information. Shape colours vary, but each class leans to its own
palette (9 times in 10) and otherwise takes any colour: real CLIP reads the shape, and even
the tiny random demo backbone, which cannot see shapes, has a learnable colour cue.
40 train / 10 val / 30 test images per class. Everything is drawn from one fixed NumPy
Generator, so every machine produces the same pixels and the same split file.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ammpl.data.base import DatasetBase
from ammpl.data.datasets.benchmark import Inventory, ReaderInfo, split_file_entries
from ammpl.data.fewshot_cache import load_or_create_fewshot
from ammpl.data.registry import DATASET_REGISTRY
from ammpl.data.splits import read_split, subsample_classes
from ammpl.utils.generated import ensure_generated
from ammpl.utils.io import write_json

DEFAULT_ROOT = os.path.join("~", ".cache", "ammpl", "datasets")
FOLDER = "shapes"
SPLIT_FILE = "split_zhou_Shapes.json"
CLASSNAMES = ("circle", "square", "triangle", "star")
SPLIT_SIZES = (("train", 40), ("val", 10), ("test", 30))
IMAGE_SIZE = 96
GENERATOR_SEED = 20240517
MIN_CONTRAST = 150  # L1 distance between shape and background colour
PALETTES = {  # centre colour per class; jittered, and used with probability PALETTE_SHARE
    "circle": (220, 60, 50),
    "square": (60, 200, 70),
    "triangle": (50, 90, 230),
    "star": (235, 215, 40),
}
PALETTE_SHARE = 0.9
PALETTE_JITTER = 25.0


def _polygon(cx: float, cy: float, radii: list[float], angle: float) -> list[tuple[float, float]]:
    """Vertices at the given radii, evenly spaced in angle, starting from `angle`."""
    step = 2 * math.pi / len(radii)
    return [
        (cx + r * math.cos(angle + i * step), cy + r * math.sin(angle + i * step))
        for i, r in enumerate(radii)
    ]


def _draw_shape(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float, angle: float,
                colour: tuple[int, int, int]) -> None:  # fmt: skip
    if name == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif name == "square":
        draw.polygon(_polygon(cx, cy, [r] * 4, angle), fill=colour)
    elif name == "triangle":
        draw.polygon(_polygon(cx, cy, [r * 1.15] * 3, angle), fill=colour)
    else:
        draw.polygon(_polygon(cx, cy, [r * 1.15, r * 0.45] * 5, angle), fill=colour)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    red, green, blue = (int(c) for c in rng.integers(0, 256, size=3))
    return red, green, blue


def _shape_colour(rng: np.random.Generator, classname: str) -> np.ndarray:
    if rng.uniform() < PALETTE_SHARE:
        centre = np.asarray(PALETTES[classname], dtype=float)
        return np.clip(centre + rng.normal(0.0, PALETTE_JITTER, size=3), 0, 255).astype(int)
    return rng.integers(0, 256, size=3)


def _render(rng: np.random.Generator, classname: str) -> Image.Image:
    size = IMAGE_SIZE
    background = rng.integers(60, 190) + rng.integers(-20, 21, size=3)  # greyish, tinted
    noise = rng.normal(0.0, 18.0, size=(size, size, 3))
    pixels = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)

    for _ in range(int(rng.integers(8, 16))):  # small blobs, too small to look like a shape
        x, y = rng.uniform(0, size, size=2)
        rx, ry = rng.uniform(1.5, 4.0, size=2)
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=_random_colour(rng))
    for _ in range(int(rng.integers(3, 7))):  # thin lines
        x0, y0, x1, y1 = rng.uniform(0, size, size=4)
        draw.line((x0, y0, x1, y1), fill=_random_colour(rng), width=1)

    radius = rng.uniform(16.0, 26.0)
    margin = radius * 1.15 + 1
    cx, cy = rng.uniform(margin, size - margin, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    colour = _shape_colour(rng, classname)
    while np.abs(colour - background).sum() < MIN_CONTRAST:  # keep the shape visible
        colour = _shape_colour(rng, classname)
    _draw_shape(draw, classname, cx, cy, radius, angle, tuple(int(c) for c in colour))
    return image


def generate_shapes(dataset_dir: str) -> None:
    """Write `images/<class>/<n>.png` and the split file into `dataset_dir` (deterministic)."""
    rng = np.random.default_rng(GENERATOR_SEED)
    split: dict[str, list] = {part: [] for part, _ in SPLIT_SIZES}
    for label, classname in enumerate(CLASSNAMES):
        class_dir = os.path.join(dataset_dir, "images", classname)
        os.makedirs(class_dir, exist_ok=True)
        index = 0
        for part, count in SPLIT_SIZES:
            for _ in range(count):
                _render(rng, classname).save(os.path.join(class_dir, f"{index}.png"))
                split[part].append([f"{classname}/{index}.png", label, classname])
                index += 1
    write_json(split, os.path.join(dataset_dir, SPLIT_FILE))


def ensure_shapes(root: str) -> str:
    """`<root>/shapes`, generated first if absent; safe against interruption and races."""

    def generate(tmp_dir: str) -> None:
        print(f"Generating the Shapes dataset in {os.path.join(root, FOLDER)}")
        generate_shapes(tmp_dir)

    return ensure_generated(root, FOLDER, SPLIT_FILE, generate, "the Shapes dataset")[0]


@DATASET_REGISTRY.register()
class Shapes(ReaderInfo, DatasetBase):
    """The demo set, read exactly like a benchmark (split file → few-shot → base/new)."""

    dataset_dir = FOLDER
    download = "nothing: it is generated on first use (e.g. by `make demo`)"
    generated_on_first_use = True

    @classmethod
    def inventory(cls, dataset_dir: str, cache_dir: str = "") -> Inventory:
        """The generated split file's images (for `ammpl-data check`)."""
        split_path = os.path.join(dataset_dir, SPLIT_FILE)
        return Inventory(split_file_entries(split_path, os.path.join(dataset_dir, "images")))

    def __init__(self, cfg: Any) -> None:
        root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT or DEFAULT_ROOT))
        self.dataset_dir = ensure_shapes(root)
        self.image_dir = os.path.join(self.dataset_dir, "images")
        self.split_path = os.path.join(self.dataset_dir, SPLIT_FILE)

        train, val, test = read_split(self.split_path, self.image_dir)
        train, val = load_or_create_fewshot(
            self.dataset_dir,
            train,
            val,
            num_shots=cfg.DATASET.NUM_SHOTS,
            seed=cfg.SEED,
            cache_dir=cfg.DATASET.get("CACHE_DIR", ""),
        )
        subsample = cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")
        train, val, test = subsample_classes(train, val, test, subsample=subsample)
        super().__init__(train_x=train, val=val, test=test)
